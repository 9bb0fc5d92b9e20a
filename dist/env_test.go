package dist

import (
	"reflect"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    Launch
		ok      bool
		wantErr string
	}{
		{name: "none", env: map[string]string{}},
		{name: "torchrun", env: map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
			"MASTER_ADDR": "node0", "MASTER_PORT": "1234"},
			want: Launch{Launcher: LauncherTorchrun, Rank: 3, Size: 8, LocalRank: 1, LocalSize: 2, MasterAddr: "node0", MasterPort: 1234}, ok: true},
		{name: "pytorchjob (no local variables, default port)", env: map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "job-master-0"},
			want: Launch{Launcher: LauncherTorchrun, Rank: 1, Size: 2, LocalSize: 1, MasterAddr: "job-master-0", MasterPort: DefaultPort}, ok: true},
		{name: "torchrun with one rank", env: map[string]string{"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "x"},
			want: Launch{Launcher: LauncherTorchrun, Size: 1, LocalSize: 1, MasterAddr: "x", MasterPort: DefaultPort}},
		{name: "torchrun without master", env: map[string]string{"RANK": "0", "WORLD_SIZE": "2"}, wantErr: "MASTER_ADDR"},
		{name: "torchrun without world size", env: map[string]string{"RANK": "0", "MASTER_ADDR": "x"}, wantErr: "WORLD_SIZE is not set"},
		{name: "bad rank", env: map[string]string{"RANK": "two", "WORLD_SIZE": "2", "MASTER_ADDR": "x"}, wantErr: `RANK="two"`},
		{name: "rank past size", env: map[string]string{"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "x"}, wantErr: "rank 2 is not below the world size 2"},
		{name: "bad port", env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "70000"}, wantErr: "MASTER_PORT 70000"},
		{name: "slurm", env: map[string]string{"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
			"SLURM_TASKS_PER_NODE": "2(x3),2", "SLURM_JOB_NODELIST": "gpu[01-04,07]"},
			want: Launch{Launcher: LauncherSlurm, Rank: 5, Size: 8, LocalRank: 1, LocalSize: 2, MasterAddr: "gpu01", MasterPort: DefaultPort}, ok: true},
		{name: "slurm uneven nodes", env: map[string]string{"SLURM_PROCID": "6", "SLURM_NTASKS": "7", "SLURM_LOCALID": "0", "SLURM_NODEID": "2",
			"SLURM_TASKS_PER_NODE": "3(x2),1", "SLURM_JOB_NODELIST": "a,b[1-2]", "MASTER_PORT": "4000"},
			want: Launch{Launcher: LauncherSlurm, Rank: 6, Size: 7, LocalSize: 1, MasterAddr: "a", MasterPort: 4000}, ok: true},
		{name: "slurm MASTER_ADDR wins", env: map[string]string{"SLURM_PROCID": "0", "SLURM_NPROCS": "2", "SLURM_NODELIST": "n[1-2]", "MASTER_ADDR": "10.0.0.9"},
			want: Launch{Launcher: LauncherSlurm, Size: 2, LocalSize: 1, MasterAddr: "10.0.0.9", MasterPort: DefaultPort}, ok: true},
		{name: "slurm bad node list", env: map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "gpu[01-04"}, wantErr: "without ']'"},
		{name: "slurm no node list", env: map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, wantErr: "SLURM_JOB_NODELIST"},
		{name: "slurm bad tasks per node", env: map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "2(x",
			"SLURM_JOB_NODELIST": "a"}, wantErr: "SLURM_TASKS_PER_NODE"},
		{name: "open mpi", env: map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
			"OMPI_COMM_WORLD_LOCAL_SIZE": "2", "MASTER_ADDR": "h0", "MASTER_PORT": "29600"},
			want: Launch{Launcher: LauncherOpenMPI, Rank: 1, Size: 4, LocalRank: 1, LocalSize: 2, MasterAddr: "h0", MasterPort: 29600}, ok: true},
		{name: "open mpi without master", env: map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"}, wantErr: "MASTER_ADDR"},
		{name: "torchrun beats slurm", env: map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"},
			want: Launch{Launcher: LauncherTorchrun, Rank: 1, Size: 2, LocalSize: 1, MasterAddr: "m", MasterPort: DefaultPort}, ok: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := FromEnv(func(k string) string { return c.env[k] })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v ok=%v, want %+v ok=%v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestExpandNodeList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "gpu[01-04,07]", want: []string{"gpu01", "gpu02", "gpu03", "gpu04", "gpu07"}},
		{in: "login1", want: []string{"login1"}},
		{in: "a,b[1-2],c", want: []string{"a", "b1", "b2", "c"}},
		{in: "rack[1-2]-n[08-10]", want: []string{"rack1-n08", "rack1-n09", "rack1-n10", "rack2-n08", "rack2-n09", "rack2-n10"}},
		{in: "n[9-11]", want: []string{"n9", "n10", "n11"}},
		{in: "n[3]", want: []string{"n3"}},
		{in: "n[4-2]", wantErr: "bad range"},
		{in: "n[a-b]", wantErr: "bad range"},
		{in: "n[1-2", wantErr: "without ']'"},
		{in: "n1-2]", wantErr: "without '['"},
		{in: "a,,b", wantErr: "empty host"},
	}
	for _, c := range cases {
		got, err := ExpandNodeList(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
