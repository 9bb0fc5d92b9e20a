package torchpickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Limits of the pickle machine. The input bounds strings and frames; these
// bound the structures that grow by a few bytes of input each.
const (
	// maxMarks bounds MARK nesting. Python's pickler recurses once per
	// nested container, so its default recursion limit of 1000 bounds what
	// a real writer can produce.
	maxMarks = 1000
	// maxStack bounds the values on the stack, all MARK levels together.
	maxStack = 1 << 20
	// maxMemo bounds the memo's entries.
	maxMemo = 1 << 20
	// maxLine bounds a GLOBAL module or name line.
	maxLine = 256
)

// Python values other than None (nil), bool, int (int64), float (float64)
// and str (string).
type (
	pyTuple []any
	pyBytes string
	pyList  struct{ items []any }
	// pyDict is a dict or OrderedDict: insertion order, Python's overwrite
	// semantics, and keys restricted to comparable scalars.
	pyDict struct {
		keys []any
		vals map[any]any
	}
	// pySet is a set or frozenset. Nothing in a weights file needs its
	// contents, so they are dropped.
	pySet struct{}
)

func newDict() *pyDict { return &pyDict{vals: map[any]any{}} }

func (d *pyDict) set(k, v any) error {
	switch k.(type) {
	case nil, bool, int64, float64, string, pyBytes:
	default:
		return fmt.Errorf("a dict key of type %s is not supported", typeName(k))
	}
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
	return nil
}

// pickle opcodes. See Python's Lib/pickle.py and pickletools.py.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opBinString      = 'T'
	opShortBinString = 'U'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opProto          = 0x80
	opNewObj         = 0x81
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opAddItems       = 0x90
	opFrozenSet      = 0x91
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
)

// unsupportedOps names the opcodes that exist but that torch.save does not
// emit, for the error message.
var unsupportedOps = map[byte]string{
	'F': "FLOAT", 'I': "INT", 'L': "LONG", 'P': "PERSID", 'S': "STRING",
	'V': "UNICODE", 'g': "GET", 'p': "PUT", 'i': "INST", 'o': "OBJ",
	0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x92: "NEWOBJ_EX",
	0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

// errTruncated reports an opcode cut off by the end of data.pkl; run wraps
// it, like every other malformed-stream error, in ErrFormat.
var errTruncated = errors.New("data.pkl ends in the middle of an opcode")

// unpickler runs one pickle held in memory.
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int // stack heights at each open MARK
	memo  map[uint32]any
	// persistentLoad turns a BINPERSID id into a storage or fails.
	persistentLoad func(pid any) (any, error)
}

// opError reports a failure at the opcode starting at byte at.
type opError struct {
	at  int
	err error
}

func (e *opError) Error() string { return fmt.Sprintf("byte %d: %v", e.at, e.err) }

func (e *opError) Unwrap() error { return e.err }

// run executes the pickle and returns the value STOP pops.
func (u *unpickler) run() (any, error) {
	u.memo = map[uint32]any{}
	for {
		at := u.pos
		if at >= len(u.data) {
			return nil, &opError{at, fmt.Errorf("%w: data.pkl ends without a STOP opcode", ErrFormat)}
		}
		op := u.data[at]
		u.pos++
		v, done, err := u.step(op)
		if err != nil {
			if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrFormat) {
				err = fmt.Errorf("%w: %w", ErrFormat, err)
			}
			return nil, &opError{at, err}
		}
		if done {
			return v, nil
		}
	}
}

// step executes one opcode; done reports STOP, with its value.
func (u *unpickler) step(op byte) (v any, done bool, err error) {
	if op == opStop {
		v, err := u.stop()
		return v, err == nil, err
	}
	if h := opHandlers[op]; h != nil {
		return nil, false, h(u, op)
	}
	if name, ok := unsupportedOps[op]; ok {
		return nil, false, fmt.Errorf("%w: opcode %s, which torch.save does not emit", ErrUnsupported, name)
	}
	return nil, false, fmt.Errorf("0x%02x is not a pickle opcode", op)
}

// opHandlers executes each supported opcode but STOP, by family: the
// machine's control, scalars, strings and bytes, containers, the memo, and
// globals and calls. A handler reads its arguments after the opcode byte.
var opHandlers = [256]func(u *unpickler, op byte) error{
	opProto: (*unpickler).doProto, opFrame: (*unpickler).doFrame,
	opMark: (*unpickler).doMark, opPop: (*unpickler).doPop, opPopMark: (*unpickler).doPopMark, opDup: (*unpickler).doDup,

	opNone: (*unpickler).doConstant, opNewTrue: (*unpickler).doConstant, opNewFalse: (*unpickler).doConstant,
	opBinInt: (*unpickler).doBinInt, opBinInt1: (*unpickler).doBinInt, opBinInt2: (*unpickler).doBinInt,
	opLong1: (*unpickler).doLong, opLong4: (*unpickler).doLong, opBinFloat: (*unpickler).doBinFloat,

	opShortBinUni: (*unpickler).doString, opBinUnicode: (*unpickler).doString, opBinUnicode8: (*unpickler).doString,
	opShortBinString: (*unpickler).doString, opBinString: (*unpickler).doString,
	opShortBinBytes: (*unpickler).doBytes, opBinBytes: (*unpickler).doBytes, opBinBytes8: (*unpickler).doBytes,

	opEmptyTuple: (*unpickler).doTuple, opTuple1: (*unpickler).doTuple, opTuple2: (*unpickler).doTuple,
	opTuple3: (*unpickler).doTuple, opTuple: (*unpickler).doTuple,
	opEmptyList: (*unpickler).doList, opList: (*unpickler).doList,
	opAppend: (*unpickler).doAppend, opAppends: (*unpickler).doAppend,
	opEmptyDict: (*unpickler).doDict, opDict: (*unpickler).doDict,
	opSetItem: (*unpickler).doSetItem, opSetItems: (*unpickler).doSetItem,
	opEmptySet: (*unpickler).doSet, opFrozenSet: (*unpickler).doSet, opAddItems: (*unpickler).doAddItems,

	opBinPut: (*unpickler).doPut, opLongBinPut: (*unpickler).doPut, opMemoize: (*unpickler).doPut,
	opBinGet: (*unpickler).doGet, opLongBinGet: (*unpickler).doGet,

	opGlobal: (*unpickler).doGlobal, opStackGlobal: (*unpickler).doStackGlobal,
	opReduce: (*unpickler).doCall, opNewObj: (*unpickler).doCall,
	opBuild: (*unpickler).doBuild, opBinPersID: (*unpickler).doPersID,
}

// stop pops the pickle's value, which must be all that is left.
func (u *unpickler) stop() (any, error) {
	v, err := u.pop()
	if err != nil {
		return nil, err
	}
	if len(u.stack) != 0 || len(u.marks) != 0 {
		return nil, fmt.Errorf("STOP leaves %d values and %d MARKs behind", len(u.stack), len(u.marks))
	}
	return v, nil
}

// The machine's control: PROTO, FRAME, MARK, POP, POP_MARK, DUP.

func (u *unpickler) doProto(byte) error {
	b, err := u.read(1)
	if err != nil {
		return err
	}
	if b[0] > 5 {
		return fmt.Errorf("pickle protocol %d is newer than any Python writes (5)", b[0])
	}
	return nil
}

// doFrame checks a FRAME. Frames only group opcodes for buffered reading;
// the whole pickle is in memory, so a frame just has to fit.
func (u *unpickler) doFrame(byte) error {
	n, err := u.uint(8)
	if err != nil {
		return err
	}
	if n > uint64(len(u.data)-u.pos) {
		return fmt.Errorf("a FRAME of %d bytes runs past the end of data.pkl", n)
	}
	return nil
}

func (u *unpickler) doMark(byte) error {
	if len(u.marks) >= maxMarks {
		return fmt.Errorf("MARKs are nested more than %d deep", maxMarks)
	}
	u.marks = append(u.marks, len(u.stack))
	return nil
}

// doPop drops the top value, or the innermost MARK when nothing lies above
// it.
func (u *unpickler) doPop(byte) error {
	if len(u.stack) > u.base() {
		u.stack = u.stack[:len(u.stack)-1]
		return nil
	}
	_, err := u.popMark()
	return err
}

func (u *unpickler) doPopMark(byte) error {
	_, err := u.popMark()
	return err
}

func (u *unpickler) doDup(byte) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	return u.push(v)
}

// Scalars: None, True, False, integers and floats.

func (u *unpickler) doConstant(op byte) error {
	switch op {
	case opNewTrue:
		return u.push(true)
	case opNewFalse:
		return u.push(false)
	}
	return u.push(nil)
}

// doBinInt pushes BININT (signed, 4 bytes), BININT1 or BININT2 (unsigned,
// 1 or 2 bytes).
func (u *unpickler) doBinInt(op byte) error {
	width := 4
	switch op {
	case opBinInt1:
		width = 1
	case opBinInt2:
		width = 2
	}
	n, err := u.uint(width)
	if err != nil {
		return err
	}
	if op == opBinInt {
		return u.push(int64(int32(uint32(n))))
	}
	return u.push(int64(n))
}

// doLong pushes LONG1 or LONG4: a length of 1 or 4 bytes, then the
// integer's two's-complement bytes.
func (u *unpickler) doLong(op byte) error {
	width := 1
	if op == opLong4 {
		width = 4
	}
	n, err := u.uint(width)
	if err != nil {
		return err
	}
	if n > 8 {
		return fmt.Errorf("an integer of %d bytes does not fit in 64 bits", n)
	}
	b, err := u.read(int(n))
	if err != nil {
		return err
	}
	return u.push(decodeLong(b))
}

func (u *unpickler) doBinFloat(byte) error {
	n, err := u.read(8)
	if err != nil {
		return err
	}
	return u.push(math.Float64frombits(binary.BigEndian.Uint64(n)))
}

// Strings and bytes.

func (u *unpickler) doString(op byte) error {
	b, err := u.counted(op)
	if err != nil {
		return err
	}
	return u.push(string(b))
}

func (u *unpickler) doBytes(op byte) error {
	b, err := u.counted(op)
	if err != nil {
		return err
	}
	return u.push(pyBytes(b))
}

// Containers: tuples, lists, dicts and sets.

// operands pops the top n values or, marked, the values above the
// innermost MARK (the forms of TUPLE, APPENDS and SETITEMS).
func (u *unpickler) operands(n int, marked bool) ([]any, error) {
	if marked {
		return u.popMark()
	}
	if len(u.stack)-u.base() < n {
		return nil, errors.New("stack underflow")
	}
	items := append([]any(nil), u.stack[len(u.stack)-n:]...)
	u.stack = u.stack[:len(u.stack)-n]
	return items, nil
}

// doTuple pushes an empty tuple, one of the top 1 to 3 values, or one of
// the values above the innermost MARK.
func (u *unpickler) doTuple(op byte) error {
	if op == opEmptyTuple {
		return u.push(pyTuple{})
	}
	n := 0
	if op != opTuple {
		n = int(op-opTuple1) + 1
	}
	items, err := u.operands(n, op == opTuple)
	if err != nil {
		return err
	}
	return u.push(pyTuple(items))
}

func (u *unpickler) doList(op byte) error {
	if op == opEmptyList {
		return u.push(&pyList{})
	}
	items, err := u.popMark()
	if err != nil {
		return err
	}
	return u.push(&pyList{items})
}

// doAppend adds the top value (APPEND) or the values above the innermost
// MARK (APPENDS) to the list below them.
func (u *unpickler) doAppend(op byte) error {
	items, err := u.operands(1, op == opAppends)
	if err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	l, ok := t.(*pyList)
	if !ok {
		return fmt.Errorf("APPEND to a %s, not a list", typeName(t))
	}
	l.items = append(l.items, items...)
	return nil
}

func (u *unpickler) doDict(op byte) error {
	if op == opEmptyDict {
		return u.push(newDict())
	}
	items, err := u.popMark()
	if err != nil {
		return err
	}
	d := newDict()
	if err := setItems(d, items); err != nil {
		return err
	}
	return u.push(d)
}

// doSetItem stores the top key and value (SETITEM) or the pairs above the
// innermost MARK (SETITEMS) in the dict below them.
func (u *unpickler) doSetItem(op byte) error {
	items, err := u.operands(2, op == opSetItems)
	if err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	d, ok := t.(*pyDict)
	if !ok {
		return fmt.Errorf("SETITEM on a %s, not a dict", typeName(t))
	}
	return setItems(d, items)
}

// doSet pushes an empty set (EMPTY_SET) or a frozenset of the values above
// the innermost MARK (FROZENSET); sets keep no contents.
func (u *unpickler) doSet(op byte) error {
	if op == opFrozenSet {
		if _, err := u.popMark(); err != nil {
			return err
		}
	}
	return u.push(&pySet{})
}

func (u *unpickler) doAddItems(byte) error {
	if _, err := u.popMark(); err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := t.(*pySet); !ok {
		return fmt.Errorf("ADDITEMS on a %s, not a set", typeName(t))
	}
	return nil
}

// The memo.

// doPut stores the top value under a 1-byte (BINPUT) or 4-byte
// (LONG_BINPUT) index, or the next free one (MEMOIZE).
func (u *unpickler) doPut(op byte) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	var i uint64
	switch op {
	case opBinPut:
		i, err = u.uint(1)
	case opLongBinPut:
		i, err = u.uint(4)
	default:
		i = uint64(len(u.memo))
	}
	if err != nil {
		return err
	}
	if _, ok := u.memo[uint32(i)]; !ok && len(u.memo) >= maxMemo {
		return fmt.Errorf("the memo would exceed %d entries", maxMemo)
	}
	u.memo[uint32(i)] = v
	return nil
}

func (u *unpickler) doGet(op byte) error {
	width := 1
	if op == opLongBinGet {
		width = 4
	}
	i, err := u.uint(width)
	if err != nil {
		return err
	}
	v, ok := u.memo[uint32(i)]
	if !ok {
		return fmt.Errorf("memo entry %d was never stored", i)
	}
	return u.push(v)
}

// Globals, calls, object state and persistent ids.

func (u *unpickler) doGlobal(byte) error {
	module, err := u.line()
	if err != nil {
		return err
	}
	name, err := u.line()
	if err != nil {
		return err
	}
	g, err := resolveGlobal(module, name)
	if err != nil {
		return err
	}
	return u.push(g)
}

func (u *unpickler) doStackGlobal(byte) error {
	if len(u.stack)-u.base() < 2 {
		return errors.New("stack underflow")
	}
	module, ok1 := u.stack[len(u.stack)-2].(string)
	name, ok2 := u.stack[len(u.stack)-1].(string)
	if !ok1 || !ok2 {
		return errors.New("STACK_GLOBAL needs a module and a name string")
	}
	u.stack = u.stack[:len(u.stack)-2]
	g, err := resolveGlobal(module, name)
	if err != nil {
		return err
	}
	return u.push(g)
}

// doCall applies an allow-listed global to a tuple of arguments (REDUCE,
// NEWOBJ).
func (u *unpickler) doCall(byte) error {
	a, err := u.pop()
	if err != nil {
		return err
	}
	f, err := u.pop()
	if err != nil {
		return err
	}
	args, ok := a.(pyTuple)
	if !ok {
		return fmt.Errorf("the arguments of a call are a %s, not a tuple", typeName(a))
	}
	g, ok := f.(*global)
	if !ok {
		return fmt.Errorf("a call of a %s, which is not callable", typeName(f))
	}
	v, err := g.call(args)
	if err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	return u.push(v)
}

// doBuild drops an object's state: that of a dict (OrderedDict._metadata)
// or of a tensor or parameter (Python attributes, hooks) carries no
// weights.
func (u *unpickler) doBuild(byte) error {
	if _, err := u.pop(); err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	switch t.(type) {
	case *pyDict, *tensorRef:
		return nil
	}
	return fmt.Errorf("BUILD on a %s; only dicts and tensors take state", typeName(t))
}

func (u *unpickler) doPersID(byte) error {
	pid, err := u.pop()
	if err != nil {
		return err
	}
	s, err := u.persistentLoad(pid)
	if err != nil {
		return err
	}
	return u.push(s)
}

func setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("%d items do not pair into keys and values", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// decodeLong decodes a little-endian two's-complement integer of at most 8
// bytes.
func decodeLong(b []byte) int64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if n := len(b); n > 0 && n < 8 && b[n-1]&0x80 != 0 {
		v |= ^uint64(0) << (8 * n)
	}
	return int64(v)
}

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, errTruncated
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

// uint reads a little-endian unsigned integer of width bytes.
func (u *unpickler) uint(width int) (uint64, error) {
	b, err := u.read(width)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := width - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// counted reads the length-prefixed payload of a string or bytes opcode.
func (u *unpickler) counted(op byte) ([]byte, error) {
	width := 4
	switch op {
	case opShortBinUni, opShortBinString, opShortBinBytes:
		width = 1
	case opBinUnicode8, opBinBytes8:
		width = 8
	}
	n, err := u.uint(width)
	if err != nil {
		return nil, err
	}
	if op == opBinString && int32(uint32(n)) < 0 {
		return nil, fmt.Errorf("negative BINSTRING length %d", int32(uint32(n)))
	}
	if n > uint64(len(u.data)-u.pos) {
		return nil, fmt.Errorf("a string of %d bytes runs past the end of data.pkl (%d bytes)", n, len(u.data))
	}
	return u.read(int(n))
}

// line reads a newline-terminated GLOBAL argument.
func (u *unpickler) line() (string, error) {
	for i := u.pos; i < len(u.data) && i-u.pos <= maxLine; i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	if len(u.data)-u.pos > maxLine {
		return "", fmt.Errorf("a GLOBAL line is longer than %d bytes", maxLine)
	}
	return "", errTruncated
}

// base is the stack height at the innermost open MARK.
func (u *unpickler) base() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) push(v any) error {
	if len(u.stack) >= maxStack {
		return fmt.Errorf("the stack would exceed %d values", maxStack)
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark removes and returns the values above the innermost MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK to pop to")
	}
	b := u.base()
	items := append([]any(nil), u.stack[b:]...)
	u.stack = u.stack[:b]
	u.marks = u.marks[:len(u.marks)-1]
	return items, nil
}

// typeName names a value's Python type for error messages.
func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case pyBytes:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pySet:
		return "set"
	case *global:
		return v.name
	case *storageRef:
		return "storage"
	case *tensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
