//! The macro that turns the option table (`options/mod.rs`) into the types of each layer, in the
//! manner of rustc's `options!` table for codegen flags: one row per option, every struct, default,
//! resolution and per-option check generated from it, so that no layer mirrors another by hand.
//!
//! A row is `/// docs` then `name "jsName": Type [= default] [, read "reader"], check function;`:
//! - `name` is transformers' name: the field of every struct and the key of
//!   `generation_config.json`; `jsName` is the key JS passes (camelCase) and the name in messages.
//! - With `= default` the resolved option is `Type` and falls back to `default` (transformers'
//!   `GenerationConfig()` value); without it, the resolved option is `Option<Type>`, None when
//!   neither the call nor the model sets it.
//! - `read` names a serde function that reads the value where transformers' files (and JS) may
//!   spell it several ways (one id or a list, a list or `null`, a dict); it returns `Option<Type>`.
//! - `check` is a function `(js_name, &resolved value, &Checking) -> Result<()>` (`checks.rs`).
//!
//! The table has three parts: `layered` options (a call's, over the model's file, over the
//! default), `call_only` options (no file sets them) and `file_only` values (read from the file
//! but not options of a call).

/// The resolved type of a row: `Type` with a default, `Option<Type>` without.
macro_rules! resolved_type {
    ($ty:ty) => { Option<$ty> };
    ($ty:ty, $default:expr) => { $ty };
}

/// The resolved value of a row from what the layers set (`Option<Type>`).
macro_rules! resolved_value {
    ($set:expr) => {
        $set
    };
    ($set:expr, $default:expr) => {
        $set.unwrap_or_else(|| $default)
    };
}

/// The value of a row when nothing sets it.
macro_rules! default_value {
    () => {
        None
    };
    ($default:expr) => {
        $default
    };
}

macro_rules! generate_options {
    (
        layered {
            $( $(#[doc = $ldoc:literal])* $lname:ident $ljs:literal : $lty:ty $(= $ldefault:expr)?
               $(, read $lread:literal)? , check $lcheck:path ; )*
        }
        call_only {
            $( $(#[doc = $cdoc:literal])* $cname:ident $cjs:literal : $cty:ty $(= $cdefault:expr)?
               , check $ccheck:path ; )*
        }
        file_only {
            $( $(#[doc = $fdoc:literal])* $fname:ident : $fty:ty ; )*
        }
    ) => {
        /// What one call set, as JS passes it (camelCase; serde reads it); None: not set, so the
        /// model's generation config and then transformers' defaults apply
        /// (`GenerateOptions::resolve`).
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct CallOptions {
            $( $(#[doc = $ldoc])* #[serde(rename = $ljs $(, deserialize_with = $lread)?)] pub $lname: Option<$lty>, )*
            $( $(#[doc = $cdoc])* #[serde(rename = $cjs)] pub $cname: Option<$cty>, )*
        }

        /// The model's own defaults for `generate`, as `generation_config.json` stores them
        /// (transformers' names). None: the file does not set it. Unknown keys are ignored, as
        /// transformers keeps them aside.
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(default)]
        pub struct GenerationConfig {
            $( $(#[doc = $ldoc])* $(#[serde(deserialize_with = $lread)])? pub $lname: Option<$lty>, )*
            $( $(#[doc = $fdoc])* pub $fname: Option<$fty>, )*
        }

        /// The options a generation runs with: the call's, over the model's generation config,
        /// over transformers' defaults. Serialized (camelCase) it is what a call that sets nothing
        /// gets from a model: the layered options only.
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct GenerateOptions {
            $( $(#[doc = $ldoc])* #[serde(rename = $ljs)] pub $lname: resolved_type!($lty $(, $ldefault)?), )*
            $( $(#[doc = $cdoc])* #[serde(skip)] pub $cname: resolved_type!($cty $(, $cdefault)?), )*
        }

        impl Default for GenerateOptions {
            /// transformers' global defaults (`GenerationConfig()`).
            fn default() -> Self {
                GenerateOptions {
                    $( $lname: default_value!($($ldefault)?), )*
                    $( $cname: default_value!($($cdefault)?), )*
                }
            }
        }

        impl GenerateOptions {
            /// Each option on its own layers: the call's value, else the model's, else the default.
            fn layer(call: CallOptions, file: &GenerationConfig) -> Self {
                GenerateOptions {
                    $( $lname: resolved_value!(call.$lname.or_else(|| file.$lname.clone()) $(, $ldefault)?), )*
                    $( $cname: resolved_value!(call.$cname $(, $cdefault)?), )*
                }
            }

            /// Each option's own check (`checks.rs`), in table order.
            fn check_each(&self, at: &Checking) -> Result<()> {
                $( $lcheck($ljs, &self.$lname, at)?; )*
                $( $ccheck($cjs, &self.$cname, at)?; )*
                Ok(())
            }
        }
    };
}
