package data

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MultipleChoice is one question of a multiple-choice task, built as
// lm-evaluation-harness builds it. Requests gives what a scorer computes.
type MultipleChoice struct {
	// Context comes before every choice. Empty for partial evaluation.
	Context string
	// Choices are the answers as lm-evaluation-harness's doc_to_choice gives
	// them: without the " " that Requests puts between context and choice.
	// For partial evaluation they are the options that fill the blank.
	Choices []string
	// Gold is the index of the correct choice.
	Gold int
	// Contexts, when not nil, selects partial evaluation (WinoGrande): the
	// context differs per choice (Contexts[i] is the sentence up to the
	// blank with choice i filled in) and every choice is scored on the same
	// Continuation, the rest of the sentence after a " ".
	Contexts     []string
	Continuation string
}

// Request is a scoring request: the log-likelihood of Continuation given
// Context, summed over the continuation's tokens.
type Request struct {
	Context, Continuation string
}

// Requests returns one request per choice: (Context, " "+Choices[i]), or
// (Contexts[i], Continuation) for partial evaluation. The scores go to Score
// in the same order.
func (q MultipleChoice) Requests() []Request {
	out := make([]Request, len(q.Choices))
	for i, c := range q.Choices {
		if q.Contexts != nil {
			out[i] = Request{Context: q.Contexts[i], Continuation: q.Continuation}
		} else {
			out[i] = Request{Context: q.Context, Continuation: " " + c}
		}
	}
	return out
}

// NormLengths returns the lengths acc_norm divides by, as
// lm-evaluation-harness computes them: ChoiceLength of each doc_to_choice
// string, which for partial evaluation is the per-choice context.
func (q MultipleChoice) NormLengths() []int {
	src := q.Choices
	if q.Contexts != nil {
		src = q.Contexts
	}
	out := make([]int, len(src))
	for i, s := range src {
		out[i] = ChoiceLength(s)
	}
	return out
}

// Score returns acc and acc_norm of the question for the summed
// log-likelihoods of its Requests (see AccNorm). It panics unless there is
// one log-likelihood per choice.
func (q MultipleChoice) Score(lls []float64) (acc, accNorm bool) {
	return AccNorm(lls, q.NormLengths(), q.Gold)
}

// taskLoaders maps task names to the function that builds a question from
// one JSONL object.
var taskLoaders = map[string]func(o object) (MultipleChoice, error){
	"hellaswag":     hellaswag,
	"piqa":          piqa,
	"arc":           arc,
	"arc_easy":      arc,
	"arc_challenge": arc,
	"winogrande":    winogrande,
	"generic":       generic,
}

// LoadMultipleChoice reads the questions of a multiple-choice task from a
// local file, one question per JSONL line or Parquet row (a file whose name
// ends in ".parquet"), building them as lm-evaluation-harness does (choices
// are scored after a " "):
//
//	hellaswag   {"activity_label", "ctx_a", "ctx_b" (or "ctx"), "endings", "label"}
//	            context preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)),
//	            choices preprocess(endings[i]); preprocess strips, turns " [title]"
//	            into ". ", deletes [bracketed] tags and replaces "  " with " "
//	piqa        {"goal", "sol1", "sol2", "label"}
//	            context "Question: " + goal + "\nAnswer:", choices sol1, sol2
//	arc         {"question", "choices": {"text", "label"}, "answerKey"} or
//	            {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}
//	            context "Question: " + question + "\nAnswer:", choices the texts,
//	            gold the position of answerKey among the labels
//	            (also as "arc_easy" and "arc_challenge")
//	winogrande  {"sentence", "option1", "option2", "answer"}: partial evaluation,
//	            see MultipleChoice.Contexts
//	generic     {"context", "choices", "gold"}, used as they are
//
// Labels may be numbers or strings holding one. Errors name the file, the
// line (or row) and the field.
func LoadMultipleChoice(path, task string) ([]MultipleChoice, error) {
	if taskLoaders[task] == nil {
		return nil, unknownTask(task)
	}
	return readMultipleChoice(path, task, func(fn func(object) error) error { return eachRecord(path, task, fn) })
}

// unknownTask is the error for a task name without a loader.
func unknownTask(task string) error {
	names := slices.Sorted(maps.Keys(taskLoaders))
	return fmt.Errorf("unknown multiple-choice task %q; use one of %s", task, strings.Join(names, ", "))
}

// readMultipleChoice builds the questions of file from the records each
// gives.
func readMultipleChoice(file, task string, each func(fn func(object) error) error) ([]MultipleChoice, error) {
	load := taskLoaders[task]
	if load == nil {
		return nil, unknownTask(task)
	}
	var out []MultipleChoice
	err := each(func(o object) error {
		q, err := load(o)
		if err != nil {
			return err
		}
		if len(q.Choices) < 2 {
			return o.errorf("the question has %d choice(s), it needs at least 2", len(q.Choices))
		}
		if q.Gold < 0 || q.Gold >= len(q.Choices) {
			return o.errorf("the answer is choice %d, outside the %d choices", q.Gold, len(q.Choices))
		}
		out = append(out, q)
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%s has no questions; check the %s file path", file, task)
	}
	return out, err
}

// hellaswag reads a HellaSwag line as lm-evaluation-harness's hellaswag task:
//
//	context = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b))
//	choices = preprocess(endings[i])
//	gold    = label (a number or a string holding one)
//
// When ctx_a is absent, "ctx" replaces ctx_a + " " + capitalize(ctx_b); when
// activity_label is absent, its "label: " prefix is left out. preprocess is
// hellaswagPreprocess.
func hellaswag(o object) (MultipleChoice, error) {
	const hint = `HellaSwag lines need "ctx" (or "ctx_a" and "ctx_b"), "endings" and "label"`
	var q MultipleChoice
	var ctx string
	if o.has("ctx_a") {
		a, err := o.str("ctx_a", hint)
		if err != nil {
			return q, err
		}
		b, err := o.str("ctx_b", hint)
		if err != nil {
			return q, err
		}
		ctx = a + " " + capitalize(b)
	} else {
		var err error
		if ctx, err = o.str("ctx", hint); err != nil {
			return q, err
		}
	}
	if o.has("activity_label") {
		label, err := o.str("activity_label", hint)
		if err != nil {
			return q, err
		}
		ctx = label + ": " + ctx
	}
	endings, err := o.strs("endings", hint)
	if err != nil {
		return q, err
	}
	if q.Gold, err = o.integer("label", hint); err != nil {
		return q, err
	}
	q.Context = hellaswagPreprocess(ctx)
	for _, e := range endings {
		q.Choices = append(q.Choices, hellaswagPreprocess(e))
	}
	return q, nil
}

// bracketTag matches the "[header]"-style tags of HellaSwag's WikiHow part.
var bracketTag = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess is lm-evaluation-harness's hellaswag preprocess: strip,
// replace " [title]" with ". ", delete bracketed tags (not across lines),
// then replace "  " with " " in one pass.
func hellaswagPreprocess(s string) string {
	s = pyStrip(s)
	s = strings.ReplaceAll(s, " [title]", ". ")
	s = bracketTag.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "  ", " ")
}

// pyStrip is Python's str.strip(): it trims the characters str.isspace
// accepts, which are Go's white space plus U+001C to U+001F.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// capitalize is Python's str.capitalize(): the first character in title case
// and the rest in lower case (except for the few letters whose Python case
// mapping depends on context or changes the length).
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// piqa reads a PIQA line as lm-evaluation-harness's piqa task:
//
//	context = "Question: " + goal + "\nAnswer:"
//	choices = [sol1, sol2]
//	gold    = label
func piqa(o object) (MultipleChoice, error) {
	const hint = `PIQA lines need "goal", "sol1", "sol2" and "label"`
	var q MultipleChoice
	var goal, sol1, sol2 string
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{{"goal", &goal}, {"sol1", &sol1}, {"sol2", &sol2}} {
		if *f.dst, err = o.str(f.key, hint); err != nil {
			return q, err
		}
	}
	if q.Gold, err = o.integer("label", hint); err != nil {
		return q, err
	}
	q.Context = "Question: " + goal + "\nAnswer:"
	q.Choices = []string{sol1, sol2}
	return q, nil
}

// arc reads an ARC (easy or challenge) line as lm-evaluation-harness's
// arc_easy and arc_challenge tasks, in either layout:
//
//	Hugging Face: {"question": q, "choices": {"text": [...], "label": [...]}, "answerKey": k}
//	AI2 original: {"question": {"stem": q, "choices": [{"text": t, "label": l}, ...]}, "answerKey": k}
//
//	context = "Question: " + q + "\nAnswer:"
//	choices = the texts, in file order
//	gold    = the position of answerKey among the labels
func arc(o object) (MultipleChoice, error) {
	const hint = `ARC lines need "question" (a string, with "choices": {"text": [...], "label": [...]}, or an object with "stem" and "choices": [{"text", "label"}]) and "answerKey"`
	var q MultipleChoice
	read := arcFlat
	if kind(o.fields["question"]) == "an object" {
		read = arcNested
	}
	stem, texts, labels, err := read(o, hint)
	if err != nil {
		return q, err
	}
	key, err := o.str("answerKey", hint)
	if err != nil {
		return q, err
	}
	if q.Gold = slices.Index(labels, key); q.Gold < 0 {
		return q, o.problem("answerKey", "", "is %q, which is none of the choice labels %q", key, labels)
	}
	q.Context = "Question: " + stem + "\nAnswer:"
	q.Choices = texts
	return q, nil
}

// arcFlat reads the question, choice texts and labels of the Hugging Face
// ARC layout.
func arcFlat(o object, hint string) (stem string, texts, labels []string, err error) {
	if stem, err = o.str("question", hint); err != nil {
		return
	}
	ch, err := o.sub("choices", hint)
	if err != nil {
		return
	}
	if texts, err = ch.strs("text", hint); err != nil {
		return
	}
	if labels, err = ch.strs("label", hint); err != nil {
		return
	}
	if len(texts) != len(labels) {
		err = o.errorf(`"choices" has %d texts but %d labels; they must pair up`, len(texts), len(labels))
	}
	return
}

// arcNested reads the question, choice texts and labels of AI2's original
// ARC layout.
func arcNested(o object, hint string) (stem string, texts, labels []string, err error) {
	qo, err := o.sub("question", hint)
	if err != nil {
		return
	}
	if stem, err = qo.str("stem", hint); err != nil {
		return
	}
	items, err := qo.objects("choices", hint)
	if err != nil {
		return
	}
	for _, it := range items {
		text, err := it.str("text", hint)
		if err != nil {
			return "", nil, nil, err
		}
		label, err := it.str("label", hint)
		if err != nil {
			return "", nil, nil, err
		}
		texts, labels = append(texts, text), append(labels, label)
	}
	return stem, texts, labels, nil
}

// winogrande reads a WinoGrande line as lm-evaluation-harness's winogrande
// task, which uses partial evaluation: with i the position of the first "_"
// in sentence,
//
//	choices      = [option1, option2]
//	contexts     = [sentence[:i] + option1, sentence[:i] + option2]
//	continuation = " " + strip(sentence[i+1:])
//	gold         = answer - 1 (answer is "1" or "2")
func winogrande(o object) (MultipleChoice, error) {
	const hint = `WinoGrande lines need "sentence" (with a "_" blank), "option1", "option2" and "answer"`
	var q MultipleChoice
	sentence, err := o.str("sentence", hint)
	if err != nil {
		return q, err
	}
	blank := strings.IndexByte(sentence, '_')
	if blank < 0 {
		return q, o.problem("sentence", hint, "has no \"_\" blank")
	}
	for _, key := range []string{"option1", "option2"} {
		opt, err := o.str(key, hint)
		if err != nil {
			return q, err
		}
		q.Choices = append(q.Choices, opt)
		q.Contexts = append(q.Contexts, sentence[:blank]+opt)
	}
	answer, err := o.integer("answer", hint)
	if err != nil {
		return q, err
	}
	if answer != 1 && answer != 2 {
		return q, o.problem("answer", hint, "is %d, not 1 or 2", answer)
	}
	q.Gold = answer - 1
	q.Continuation = " " + pyStrip(sentence[blank+1:])
	return q, nil
}

// generic reads the task-neutral layout
//
//	{"context": c, "choices": [...], "gold": g}
//
// as lm-evaluation-harness's MultipleChoiceTask reads its documents: the
// context and choices as they are, each choice scored after a " ".
func generic(o object) (MultipleChoice, error) {
	const hint = `generic lines need "context", "choices" and "gold"`
	var q MultipleChoice
	var err error
	if q.Context, err = o.str("context", hint); err != nil {
		return q, err
	}
	if q.Choices, err = o.strs("choices", hint); err != nil {
		return q, err
	}
	if q.Gold, err = o.integer("gold", hint); err != nil {
		return q, err
	}
	return q, nil
}
