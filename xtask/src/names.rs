//! Closed vocabularies that travel as words: a matrix cell's fault and policy are printed in the
//! tables, matched by `--fault`, and handed to a child process by name. [`named_enum!`] writes
//! such an enum with its names in one place: the variants, `ALL`, `name()`, `Display` and
//! `FromStr` cannot drift apart.

use thiserror::Error;

/// A word that names no member of a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} `{name}` (known: {known})")]
pub struct UnknownName {
    /// What was being named (`matrix fault`, `cell`...).
    pub kind: &'static str,
    /// The word given.
    pub name: String,
    /// The words that would have been understood, comma-separated.
    pub known: String,
}

impl UnknownName {
    pub(crate) fn new<'a>(
        kind: &'static str,
        name: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) -> UnknownName {
        UnknownName {
            kind,
            name: name.to_owned(),
            known: known.into_iter().collect::<Vec<_>>().join(", "),
        }
    }
}

/// `named_enum! { /// docs  pub(crate) enum Name: "kind" { /// docs  Variant => "word", ... } }`
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $visibility:vis enum $name:ident: $kind:literal {
            $( $(#[$variant_meta:meta])* $variant:ident => $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $visibility enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every member, in declaration order.
            pub(crate) const ALL: &'static [$name] = &[$( $name::$variant, )+];

            /// The word that names it (in cell names, tables, and a child's arguments).
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(word: &str) -> Result<$name, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|member| member.name() == word)
                    .ok_or_else(|| {
                        $crate::names::UnknownName::new(
                            $kind,
                            word,
                            $name::ALL.iter().map(|member| member.name()),
                        )
                    })
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    named_enum! {
        /// A vocabulary for the test.
        enum Colour: "colour" {
            /// First.
            Red => "red",
            DeepBlue => "deep-blue",
        }
    }

    #[test]
    fn a_name_parses_back_and_an_unknown_one_lists_the_known() {
        for colour in Colour::ALL {
            assert_eq!(colour.name().parse::<Colour>(), Ok(*colour));
            assert_eq!(colour.to_string(), colour.name());
        }
        let error = "green".parse::<Colour>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unknown colour `green` (known: red, deep-blue)"
        );
    }
}
