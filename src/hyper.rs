//! One list of hyper-parameters becomes a configuration struct (serde: the `--config` TOML
//! file), its defaults, and the same fields as optional command-line flags that override it.
//! The model's and the training run's configurations are both written with it, so each
//! hyper-parameter is named, documented and defaulted once.

/// `hyper_params! { Config / Flags { fixed { .. } nested { .. } fields { .. } } }`:
/// - `fixed`: fields of the struct that are not flags (set by the program, e.g. from the data);
/// - `nested`: a configuration inside this one (`field: Config / Flags`), a TOML table and its
///   flags flattened into these;
/// - `fields`: each a TOML field and a `--kebab-case` flag.
#[macro_export]
macro_rules! hyper_params {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident / $flags:ident {
            fixed { $( $(#[doc = $xdoc:literal])* $xname:ident : $xty:ty = $xdef:expr ),* $(,)? }
            nested { $( $(#[doc = $ndoc:literal])* $nname:ident : $nty:ident / $nflags:ident ),* $(,)? }
            fields { $( $(#[doc = $doc:literal])* $fname:ident : $fty:ty = $fdef:expr ),* $(,)? }
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $xdoc])* pub $xname: $xty, )*
            $( $(#[doc = $ndoc])* pub $nname: $nty, )*
            $( $(#[doc = $doc])* pub $fname: $fty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $xname: $xdef, )*
                    $( $nname: <$nty>::default(), )*
                    $( $fname: $fdef, )*
                }
            }
        }

        /// The same fields as command-line flags; a flag given overrides preset and file.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct $flags {
            $( #[command(flatten)] pub $nname: $nflags, )*
            $( $(#[doc = $doc])* #[arg(long)] pub $fname: Option<$fty>, )*
        }

        impl $flags {
            /// Writes every flag given into `config`.
            pub fn apply(&self, config: &mut $name) {
                $( self.$nname.apply(&mut config.$nname); )*
                $( if let Some(v) = &self.$fname { config.$fname = v.clone(); } )*
            }
        }
    };
}
