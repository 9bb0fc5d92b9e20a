cd /work/main
for b in 1000000 3300000; do
  for v in "pure:" "hyb0:0," "hyb1:1,"; do
    n=${v%%:*}; l=${v#*:}
    set -- output_dir=/tmp/lhyb2/runs name=dl-$n student.init=attention
    [ -n "$l" ] && set -- "$@" student.attention_layers=$l
    echo "== $b $n $*"
    bin/pipeline ablate configs/demo-llama-ablate.yaml --budget $b --recipes s123 "$@" 2>>/tmp/lhyb2/err.txt | grep -E "Hybrid|Stages 1"
  done
done
echo done
