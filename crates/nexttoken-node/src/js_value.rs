//! Reading a JS value with serde: a call's options become the core's `CallOptions` this way.
//!
//! Not napi's own `Env::from_js_value`, because its numbers are not JS's: it reads any number
//! within `f64::EPSILON` of an integer as that integer (a `temperature` of 1e-20 became 0) and
//! clamps integers past i64 (1e300 became 9.2e18); nor `serde_json::Value`, which holds no NaN or
//! Infinity (`logitBias` bans a token with -Infinity; a NaN `temperature` must reach the core's
//! check and its message). Here the JS value is first copied into a `JsCopy` tree, whose numbers
//! are integers only when they are exactly integers.

use napi::bindgen_prelude::{JsObjectValue as _, JsValue as _, Object, Unknown};
use napi::ValueType;
use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};

/// Deeper than any option nests (`sequenceBias` is 4 levels): a cyclic object ends here instead
/// of in a stack overflow.
const MAX_DEPTH: usize = 16;

/// A JS value as JSON would see it, with every f64 kept (NaN and the infinities too).
pub enum JsCopy {
    /// `null` or `undefined`: an option left unset.
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsCopy>),
    Object(Vec<(String, JsCopy)>),
}

impl JsCopy {
    /// Copies `value` (an object's own enumerable properties, an array's elements).
    pub fn read(value: Unknown) -> napi::Result<Self> {
        Self::read_within(value, MAX_DEPTH)
    }

    fn read_within(value: Unknown, depth: usize) -> napi::Result<Self> {
        let Some(depth) = depth.checked_sub(1) else {
            return Err(napi::Error::new(
                napi::Status::InvalidArg,
                "options nest too deep (or refer to themselves)",
            ));
        };
        // SAFETY (each `cast`): `value` is a live value of the current call's env, and it is cast
        // to the type `get_type` just reported, as `cast` requires.
        Ok(match value.get_type()? {
            ValueType::Null | ValueType::Undefined => JsCopy::Null,
            ValueType::Boolean => JsCopy::Bool(unsafe { value.cast::<bool>() }?),
            ValueType::Number => JsCopy::Number(unsafe { value.cast::<f64>() }?),
            ValueType::String => JsCopy::String(unsafe { value.cast::<String>() }?),
            ValueType::Object => {
                let object = unsafe { value.cast::<Object>() }?;
                if object.is_array()? {
                    let items = (0..object.get_array_length()?)
                        .map(|i| Self::read_within(object.get_element::<Unknown>(i)?, depth))
                        .collect::<napi::Result<_>>()?;
                    JsCopy::Array(items)
                } else {
                    let names = object.get_property_names()?;
                    let entries = (0..names.get_array_length()?)
                        .map(|i| {
                            let name = names.get_element::<String>(i)?;
                            let value = object.get_named_property::<Unknown>(&name)?;
                            Ok((name, Self::read_within(value, depth)?))
                        })
                        .collect::<napi::Result<_>>()?;
                    JsCopy::Object(entries)
                }
            }
            other => {
                return Err(napi::Error::new(
                    napi::Status::InvalidArg,
                    format!("a {other} is not an option value"),
                ))
            }
        })
    }
}

impl<'de> IntoDeserializer<'de, Error> for JsCopy {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for JsCopy {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            JsCopy::Null => visitor.visit_unit(),
            JsCopy::Bool(b) => visitor.visit_bool(b),
            // An exact integer as one (so that it fills an integer field); any other number,
            // NaN and the infinities included, as the f64 it is.
            JsCopy::Number(n) if n.fract() == 0.0 && n.abs() < 2f64.powi(63) => match n < 0.0 {
                true => visitor.visit_i64(n as i64),
                false => visitor.visit_u64(n as u64),
            },
            JsCopy::Number(n) => visitor.visit_f64(n),
            JsCopy::String(s) => visitor.visit_string(s),
            JsCopy::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            JsCopy::Object(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            JsCopy::Null => visitor.visit_none(),
            value => visitor.visit_some(value),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// `T` (the core's `CallOptions`) from a JS object.
pub fn from_js<T: de::DeserializeOwned>(value: Unknown) -> napi::Result<T> {
    T::deserialize(JsCopy::read(value)?)
        .map_err(|err| napi::Error::new(napi::Status::InvalidArg, err.to_string()))
}
