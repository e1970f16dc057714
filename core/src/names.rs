//! The closed sets of names the core uses (strategies, health, check
//! results, event types, error codes): each written once, as one list that
//! yields the enum, its codes, its stable names and their documentation.
//! Bindings read these lists, directly or through generated files.

/// The names, joined by `", "`, as one literal.
macro_rules! join_names {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

/// Declares a `#[repr(u8)]` enum from one list of `Variant = code => "name"`
/// entries, with `ALL`, `NAMES`, `LIST`, `DOCS` and `as_str`.
macro_rules! name_table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $code:literal => $str:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        pub enum $name {
            $( $(#[doc = $doc])* $variant = $code, )*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: [$name; [$($code),*].len()] = [$($name::$variant),*];
            /// Every stable name, in code order.
            pub const NAMES: [&'static str; $name::ALL.len()] = [$($str),*];
            /// The names, in code order, joined by `", "` (for messages).
            pub const LIST: &'static str = join_names!($($str),*);
            /// Each value's documentation, in code order.
            pub const DOCS: [&'static str; $name::ALL.len()] = [$(concat!($($doc, "\n"),*)),*];

            /// The stable name, as in SPEC.md.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $str,)*
                }
            }
        }
    };
}
