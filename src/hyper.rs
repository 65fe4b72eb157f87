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

/// `base` with the fields of the TOML file at `path` written over it (unknown fields are errors;
/// fields absent from the file, also inside its tables, keep `base`'s values).
pub fn from_toml_file<T>(path: &std::path::Path, base: T) -> crate::error::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    use crate::error::AwdError;
    let text = std::fs::read_to_string(path).map_err(|e| AwdError::io(path, e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| AwdError::Config(format!("{}: {e}", path.display())))?;
    let mut merged = toml::Table::try_from(&base).map_err(|e| AwdError::Config(e.to_string()))?;
    merge(&mut merged, table);
    merged
        .try_into()
        .map_err(|e| AwdError::Config(format!("{}: {e}", path.display())))
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
