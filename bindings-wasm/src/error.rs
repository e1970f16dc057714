//! The one place where core errors become JavaScript values, or the text
//! the facade makes them from.

use alloc::borrow::ToOwned;
use alloc::string::String;

use wasm_bindgen::JsValue;

/// A real JavaScript `Error` with `name = "WaypostError"` and `.code` set to
/// the stable SPEC §8 code; the message is the core's human message.
pub fn js_error(error: &waypost::Error) -> JsValue {
    let code = JsValue::from_str(error.code().as_str());
    let js = js_sys::Error::new(&error.message());
    js.set_name("WaypostError");
    // Setting a property on a fresh plain Error object cannot fail.
    let _ = js_sys::Reflect::set(&js, &JsValue::from_str("code"), &code);
    js.into()
}

/// The same error as text, `code message`, for the facade to make into a
/// `WaypostError` (see `takeError`); `None` reads as a binding misuse.
pub fn error_text(error: Option<&waypost::Error>) -> String {
    match error {
        Some(e) => {
            let mut text = String::from(e.code().as_str());
            text.push(' ');
            text.push_str(&e.message());
            text
        }
        None => "invalid_argument no error recorded".to_owned(),
    }
}

/// Maps a core result through [`js_error`].
pub fn check<T>(result: waypost::Result<T>) -> Result<T, JsValue> {
    result.map_err(|e| js_error(&e))
}
