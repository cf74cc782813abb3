//! The primitive table: names, arities, and how each primitive's arguments
//! flow into its result (what the CTRR pass needs). The implementations
//! live in `vm/prims.rs`.

/// How a primitive's arguments relate to its result, for escape analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The result is a fresh object that embeds the arguments.
    Embeds,
    /// The result is (part of) the first argument.
    ReadsFirst,
    /// Arguments are only inspected; the result, if allocated, holds none.
    Inspects,
    /// First argument is a container; the others are stored into it.
    Stores,
    /// Calls procedures; results and arguments may end up in the result.
    Higher,
}

const ANY: usize = usize::MAX;

macro_rules! prims {
    ($($id:ident = $name:literal, $min:expr, $max:expr, $flow:ident;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Prim { $($id),* }

        pub const PRIMS: &[(Prim, &str, usize, usize, Flow)] = &[
            $((Prim::$id, $name, $min, $max, Flow::$flow)),*
        ];

        impl Prim {
            /// The primitive named `name`. A `match` on the names (the
            /// compiler asks for every variable in head position; a scan
            /// of the table was a tenth of compile time).
            pub fn by_name(name: &str) -> Option<Prim> {
                match name {
                    $($name => Some(Prim::$id),)*
                    _ => ALIASES.iter().find(|a| a.0 == name).map(|a| a.1),
                }
            }
        }
    };
}

prims! {
    Add = "+", 0, ANY, Inspects;
    Sub = "-", 1, ANY, Inspects;
    Mul = "*", 0, ANY, Inspects;
    Div = "/", 1, ANY, Inspects;
    Quotient = "quotient", 2, 2, Inspects;
    Remainder = "remainder", 2, 2, Inspects;
    Modulo = "modulo", 2, 2, Inspects;
    NumEq = "=", 1, ANY, Inspects;
    Lt = "<", 1, ANY, Inspects;
    Gt = ">", 1, ANY, Inspects;
    Le = "<=", 1, ANY, Inspects;
    Ge = ">=", 1, ANY, Inspects;
    Abs = "abs", 1, 1, Inspects;
    Min = "min", 1, ANY, Inspects;
    Max = "max", 1, ANY, Inspects;
    IsZero = "zero?", 1, 1, Inspects;
    IsEven = "even?", 1, 1, Inspects;
    IsOdd = "odd?", 1, 1, Inspects;
    IsPositive = "positive?", 1, 1, Inspects;
    IsNegative = "negative?", 1, 1, Inspects;
    NumberToString = "number->string", 1, 2, Inspects;
    ExactToInexact = "exact->inexact", 1, 1, Inspects;
    Sqrt = "sqrt", 1, 1, Inspects;
    IsEq = "eq?", 2, 2, Inspects;
    IsEqv = "eqv?", 2, 2, Inspects;
    IsEqual = "equal?", 2, 2, Inspects;
    IsNull = "null?", 1, 1, Inspects;
    IsPair = "pair?", 1, 1, Inspects;
    IsList = "list?", 1, 1, Inspects;
    IsSymbol = "symbol?", 1, 1, Inspects;
    IsString = "string?", 1, 1, Inspects;
    IsNumber = "number?", 1, 1, Inspects;
    IsInteger = "integer?", 1, 1, Inspects;
    IsFloat = "float?", 1, 1, Inspects;
    IsChar = "char?", 1, 1, Inspects;
    IsProcedure = "procedure?", 1, 1, Inspects;
    IsArray = "array?", 1, 1, Inspects;
    IsDict = "dict?", 1, 1, Inspects;
    IsBoolean = "boolean?", 1, 1, Inspects;
    IsNothing = "nothing?", 1, 1, Inspects;
    Not = "not", 1, 1, Inspects;
    Cons = "cons", 2, 2, Embeds;
    Car = "car", 1, 1, ReadsFirst;
    Cdr = "cdr", 1, 1, ReadsFirst;
    Caar = "caar", 1, 1, ReadsFirst;
    Cadr = "cadr", 1, 1, ReadsFirst;
    Cdar = "cdar", 1, 1, ReadsFirst;
    Cddr = "cddr", 1, 1, ReadsFirst;
    Caddr = "caddr", 1, 1, ReadsFirst;
    List = "list", 0, ANY, Embeds;
    Length = "length", 1, 1, Inspects;
    Append = "append", 0, ANY, Embeds;
    Reverse = "reverse", 1, 1, Embeds;
    ListRef = "list-ref", 2, 2, ReadsFirst;
    Map = "map", 2, ANY, Higher;
    ForEach = "for-each", 2, ANY, Higher;
    Filter = "filter", 2, 2, Higher;
    FoldLeft = "fold-left", 3, 3, Higher;
    Assoc = "assoc", 2, 2, ReadsFirst;
    Assq = "assq", 2, 2, ReadsFirst;
    Member = "member", 2, 2, ReadsFirst;
    Memq = "memq", 2, 2, ReadsFirst;
    Apply = "apply", 2, ANY, Higher;
    SetCar = "set-car!", 2, 2, Stores;
    SetCdr = "set-cdr!", 2, 2, Stores;
    Array = "array", 0, ANY, Embeds;
    MakeArray = "make-array", 1, 2, Embeds;
    ArrayRef = "array-ref", 2, 2, ReadsFirst;
    ArraySet = "array-set!", 3, 3, Stores;
    ArrayLength = "array-length", 1, 1, Inspects;
    ArrayPush = "array-push!", 2, 2, Stores;
    ArrayToList = "array->list", 1, 1, Embeds;
    ListToArray = "list->array", 1, 1, Embeds;
    Dict = "dict", 0, ANY, Embeds;
    DictRef = "dict-ref", 2, 3, ReadsFirst;
    DictSet = "dict-set!", 3, 3, Stores;
    DictRemove = "dict-remove!", 2, 2, Inspects;
    DictHas = "dict-has?", 2, 2, Inspects;
    DictKeys = "dict-keys", 1, 1, Embeds;
    DictCount = "dict-count", 1, 1, Inspects;
    StringLength = "string-length", 1, 1, Inspects;
    StringAppend = "string-append", 0, ANY, Inspects;
    Substring = "substring", 2, 3, Inspects;
    StringEq = "string=?", 2, ANY, Inspects;
    StringLt = "string<?", 2, ANY, Inspects;
    StringRef = "string-ref", 2, 2, Inspects;
    StringToSymbol = "string->symbol", 1, 1, Inspects;
    SymbolToString = "symbol->string", 1, 1, Inspects;
    StringToList = "string->list", 1, 1, Inspects;
    ListToString = "list->string", 1, 1, Inspects;
    StringToNumber = "string->number", 1, 2, Inspects;
    Box = "box", 1, 1, Embeds;
    Unbox = "unbox", 1, 1, ReadsFirst;
    SetBox = "set-box!", 2, 2, Stores;
    Display = "display", 1, 1, Inspects;
    Write = "write", 1, 1, Inspects;
    Println = "println", 0, ANY, Inspects;
    Newline = "newline", 0, 0, Inspects;
    Error = "error", 1, ANY, Inspects;
    GuardError = "guard-error", 2, 2, Higher;
    Exit = "exit", 0, 1, Inspects;
    CommandLine = "command-line", 0, 0, Inspects;
    Coalesce = "coalesce!", 0, 0, Inspects;
    Spawn = "spawn", 1, 1, Inspects;
    Join = "join", 1, 1, Inspects;
    Chan = "chan", 0, 1, Inspects;
    Send = "send", 2, 2, Inspects;
    Recv = "recv", 1, 1, Inspects;
    Close = "close", 1, 1, Inspects;
    // R7RS primitives beyond ../shared/LANGUAGE.md (prims_r7rs.rs).
    Floor = "floor", 1, 1, Inspects;
    Ceiling = "ceiling", 1, 1, Inspects;
    Round = "round", 1, 1, Inspects;
    Truncate = "truncate", 1, 1, Inspects;
    Exact = "exact", 1, 1, Inspects;
    Inexact = "inexact", 1, 1, Inspects;
    Expt = "expt", 2, 2, Inspects;
    Gcd = "gcd", 0, ANY, Inspects;
    Lcm = "lcm", 0, ANY, Inspects;
    Square = "square", 1, 1, Inspects;
    IsExactInteger = "exact-integer?", 1, 1, Inspects;
    CharToInteger = "char->integer", 1, 1, Inspects;
    IntegerToChar = "integer->char", 1, 1, Inspects;
    CharEq = "char=?", 2, ANY, Inspects;
    CharLt = "char<?", 2, ANY, Inspects;
    CharGt = "char>?", 2, ANY, Inspects;
    CharLe = "char<=?", 2, ANY, Inspects;
    CharGe = "char>=?", 2, ANY, Inspects;
    IsCharAlphabetic = "char-alphabetic?", 1, 1, Inspects;
    IsCharNumeric = "char-numeric?", 1, 1, Inspects;
    IsCharWhitespace = "char-whitespace?", 1, 1, Inspects;
    IsCharUpperCase = "char-upper-case?", 1, 1, Inspects;
    IsCharLowerCase = "char-lower-case?", 1, 1, Inspects;
    CharUpcase = "char-upcase", 1, 1, Inspects;
    CharDowncase = "char-downcase", 1, 1, Inspects;
    StringOf = "string", 0, ANY, Inspects;
    StringUpcase = "string-upcase", 1, 1, Inspects;
    StringDowncase = "string-downcase", 1, 1, Inspects;
    StringCopy = "string-copy", 1, 3, Inspects;
    StringGt = "string>?", 2, ANY, Inspects;
    StringLe = "string<=?", 2, ANY, Inspects;
    StringGe = "string>=?", 2, ANY, Inspects;
    ListTail = "list-tail", 2, 2, ReadsFirst;
    Assv = "assv", 2, 2, ReadsFirst;
    Memv = "memv", 2, 2, ReadsFirst;
    // Input (input.rs): the program's standard input, no port arguments.
    ReadLine = "read-line", 0, 0, Inspects;
    ReadChar = "read-char", 0, 0, Inspects;
    PeekChar = "peek-char", 0, 0, Inspects;
    Read = "read", 0, 0, Inspects;
    EofObject = "eof-object", 0, 0, Inspects;
    IsEofObject = "eof-object?", 1, 1, Inspects;
}

/// R7RS names of primitives: vectors are arrays (LANGUAGE_NOTES.md). Each
/// is a global of its own, bound to the same primitive; errors name the
/// primitive (`array-ref`).
pub const ALIASES: &[(&str, Prim)] = &[
    ("vector", Prim::Array),
    ("make-vector", Prim::MakeArray),
    ("vector-ref", Prim::ArrayRef),
    ("vector-set!", Prim::ArraySet),
    ("vector-length", Prim::ArrayLength),
    ("vector->list", Prim::ArrayToList),
    ("list->vector", Prim::ListToArray),
    ("vector?", Prim::IsArray),
];

/// The primitive a fresh VM binds global `g` to: the VM numbers the
/// primitives' globals first, in `PRIMS` order, then the `ALIASES`.
pub fn prim_of_global(g: usize) -> Option<Prim> {
    match PRIMS.get(g) {
        Some(e) => Some(e.0),
        None => ALIASES.get(g - PRIMS.len()).map(|a| a.1),
    }
}

impl Prim {
    #[inline]
    pub fn name(self) -> &'static str {
        PRIMS[self as usize].1
    }

    pub fn arity(self) -> (usize, usize) {
        let e = &PRIMS[self as usize];
        (e.2, e.3)
    }

    pub fn flow(self) -> Flow {
        PRIMS[self as usize].4
    }

    pub fn from_index(i: usize) -> Option<Prim> {
        PRIMS.get(i).map(|e| e.0)
    }

    /// Whether the VM answers a call of this one-operand primitive without
    /// a call when it applies (`vm::eval::unary_fast_path`; a test there
    /// checks the two agree): `fuse.rs` fuses exactly these on a local.
    pub fn has_unary_fast_path(self) -> bool {
        use Prim::*;
        matches!(
            self,
            Car | Cdr | IsNull | IsPair | Not | IsZero | Cadr | Cddr | Caddr
        ) || (self.is_type_test() && self != IsList)
    }

    /// The pair accessors with a unary fast path (`car`, `cdr`, `cadr`,
    /// `cddr`, `caddr`): the only one-operand primitives a fixnum
    /// superinstruction applies to its operands (`FixArg::Unary`).
    pub fn is_pair_path(self) -> bool {
        use Prim::*;
        matches!(self, Car | Cdr | Cadr | Cddr | Caddr)
    }

    /// The type predicates (`pair?`, `string?`, ...): one argument, a
    /// boolean result.
    pub fn is_type_test(self) -> bool {
        use Prim::*;
        matches!(
            self,
            IsNull
                | IsPair
                | IsList
                | IsSymbol
                | IsNumber
                | IsInteger
                | IsString
                | IsFloat
                | IsChar
                | IsProcedure
                | IsArray
                | IsDict
                | IsBoolean
                | IsNothing
        )
    }

    /// The numeric operations with a numeric result, each made afresh
    /// (`prims.rs`: `make_num`, `make_int`, `alloc_float`).
    #[inline(always)]
    pub fn is_arithmetic(self) -> bool {
        use Prim::*;
        matches!(
            self,
            Add | Sub
                | Mul
                | Div
                | Quotient
                | Remainder
                | Modulo
                | Abs
                | Min
                | Max
                | ExactToInexact
                | Sqrt
                | Floor
                | Ceiling
                | Round
                | Truncate
                | Exact
                | Inexact
                | Expt
                | Gcd
                | Lcm
                | Square
        )
    }

    /// Whether the primitive allocates its result (so its site has a region).
    /// Inlined: the VM asks on every primitive call.
    #[inline(always)]
    pub fn allocates(self) -> bool {
        use Prim::*;
        self.is_arithmetic()
            || matches!(
                self,
                NumberToString
                | Cons
                | List
                | Append
                | Reverse
                | Map
                | Filter
                | FoldLeft
                | Apply
                | Array
                | MakeArray
                | ArrayToList
                | ListToArray
                | Dict
                | DictKeys
                | StringAppend
                | Substring
                | SymbolToString
                | StringToList
                | ListToString
                | StringToNumber
                | StringOf
                | StringUpcase
                | StringDowncase
                | StringCopy
                | ReadLine
                | Read
                | Box
                | GuardError
                | CommandLine
                // A received message or a joined result is spliced into
                // the region of the call site.
                | Recv
                | Join
            )
    }

    /// Whether the primitive stores into an existing structure (a barrier
    /// site). Spelled out (not a table lookup): the VM asks on every call.
    #[inline(always)]
    pub fn is_store(self) -> bool {
        use Prim::*;
        matches!(
            self,
            SetCar | SetCdr | ArraySet | ArrayPush | DictSet | SetBox
        )
    }

    /// Whether the primitive stores into an array, dict or box slot,
    /// whose values belong in the container's slot region
    /// (docs/REGION_COALESCE_POLICY.md): a stored value is built there
    /// directly or copied there by the barrier, never built in the
    /// container's own region.
    pub fn has_slot_region(self) -> bool {
        matches!(
            self,
            Prim::ArraySet | Prim::ArrayPush | Prim::DictSet | Prim::SetBox
        )
    }

    /// Whether a read as an argument may borrow its value (`Node::Borrow`,
    /// `Node::BoxBorrow`, no pin): the primitive runs no procedure, keeps
    /// none of its arguments, and returns none of them (a fresh object, an
    /// immediate, or nothing; not `error`, whose irritants travel on).
    /// Arithmetic qualifies: every numeric result is made afresh
    /// (`prims.rs` builds even `(+ x)`, `min` and `max` with `make_num`,
    /// the VM's fast paths return immediates).
    pub fn borrows_args(self) -> bool {
        use Prim::*;
        self.is_arithmetic()
            || matches!(
                self,
                IsZero
                    | IsEven
                    | IsOdd
                    | IsPositive
                    | IsNegative
                    | StringLength
                    | StringAppend
                    | Substring
                    | StringEq
                    | StringLt
                    | StringGt
                    | StringLe
                    | StringGe
                    | StringUpcase
                    | StringDowncase
                    | StringCopy
                    | StringRef
                    | StringToList
                    | StringToNumber
                    | StringToSymbol
                    | ListToString
                    | NumberToString
                    | Length
                    | ArrayLength
                    | DictCount
                    | DictHas
                    | IsEq
                    | IsEqv
                    | IsEqual
                    | NumEq
                    | Lt
                    | Gt
                    | Le
                    | Ge
                    | Not
                    | Display
                    | Write
                    | Println
            )
            || self.is_type_test()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_discriminant() {
        for (i, e) in PRIMS.iter().enumerate() {
            assert_eq!(e.0 as usize, i, "{}", e.1);
            assert_eq!(Prim::by_name(e.1), Some(e.0));
            assert_eq!(e.0.is_store(), e.4 == Flow::Stores, "{}", e.1);
        }
        for a in ALIASES {
            assert_eq!(Prim::by_name(a.0), Some(a.1));
            assert!(
                PRIMS.iter().all(|e| e.1 != a.0),
                "{} is a primitive's own name",
                a.0
            );
        }
    }
}
