//! The one place where core errors become JavaScript values.

use wasm_bindgen::JsValue;

/// A real JavaScript `Error` with `name = "WaypostError"` and `.code` set to
/// the stable SPEC §8 code; the message is the core's human message.
pub fn js_error(error: &waypost::Error) -> JsValue {
    make(error.code().as_str(), &error.to_string())
}

/// Same shape for failures found in the binding itself (a value that could
/// not be converted), always `invalid_argument`.
pub fn invalid(message: &str) -> JsValue {
    make("invalid_argument", message)
}

fn make(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("WaypostError");
    // Setting a property on a fresh plain Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &JsValue::from_str("code"), &JsValue::from_str(code));
    error.into()
}

/// Maps a core result through [`js_error`].
pub fn check<T>(result: waypost::Result<T>) -> Result<T, JsValue> {
    result.map_err(|e| js_error(&e))
}
