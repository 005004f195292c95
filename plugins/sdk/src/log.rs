//! Structured logging into the gateway's log, labelled with the merchant.
//!
//! ```ignore
//! log::info!("instance created", instance_id = req.instance_id, seats = 5);
//! ```
//! Field values are formatted with `Display`. The gateway bounds the volume
//! per call (records past the budget are dropped).

pub use crate::bindings::koogallery::plugin::log::{Field, Level};

/// Sends one record; the macros below are the usual way in.
pub fn emit(level: Level, message: &str, fields: &[Field]) {
    crate::bindings::koogallery::plugin::log::log(level, message, fields);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_log {
    ($level:expr, $message:expr $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::log::emit(
            $level,
            &$message,
            &[$($crate::log::Field { key: stringify!($key).to_string(), value: ($value).to_string() }),*],
        )
    };
}

#[macro_export]
#[doc = "Logs at trace level: `trace!(\"message\", key = value, ...)`."]
macro_rules! __plugin_trace { ($($t:tt)*) => { $crate::__plugin_log!($crate::log::Level::Trace, $($t)*) }; }
#[macro_export]
#[doc = "Logs at debug level: `debug!(\"message\", key = value, ...)`."]
macro_rules! __plugin_debug { ($($t:tt)*) => { $crate::__plugin_log!($crate::log::Level::Debug, $($t)*) }; }
#[macro_export]
#[doc = "Logs at info level: `info!(\"message\", key = value, ...)`."]
macro_rules! __plugin_info { ($($t:tt)*) => { $crate::__plugin_log!($crate::log::Level::Info, $($t)*) }; }
#[macro_export]
#[doc = "Logs at warn level: `warn!(\"message\", key = value, ...)`."]
macro_rules! __plugin_warn { ($($t:tt)*) => { $crate::__plugin_log!($crate::log::Level::Warn, $($t)*) }; }
#[macro_export]
#[doc = "Logs at error level: `error!(\"message\", key = value, ...)`."]
macro_rules! __plugin_error { ($($t:tt)*) => { $crate::__plugin_log!($crate::log::Level::Error, $($t)*) }; }

pub use crate::{
    __plugin_debug as debug, __plugin_error as error, __plugin_info as info,
    __plugin_trace as trace, __plugin_warn as warn,
};
