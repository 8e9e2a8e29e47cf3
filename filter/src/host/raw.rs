//! The host calls the filter makes, without the SDK's wrappers: proxy-wasm 0.2.5
//! panics on any status it does not expect, and a panic traps the VM, after which
//! Envoy fails every request on that worker. Here a refused call is an `Err` with
//! Envoy's status, for the caller to log or ignore.
//!
//! One call still goes through the SDK: dispatching an HTTP call, because the SDK
//! routes the reply to the context that made it from a registry that only its own
//! `dispatch_http_call` fills.

use crate::request::{self, Headers};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

/// Envoy's status of a refused call (proxy-wasm's `WasmResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
/// proxy-wasm's `MapType`, `BufferType` and `StreamType` values.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;
const CALL_REPLY_HEADERS: u32 = 6;
const CALL_REPLY_BODY: u32 = 4;
const PLUGIN_CONFIGURATION: u32 = 7;
const REQUEST_STREAM: u32 = 0;
/// No gRPC status on a local reply.
const NO_GRPC_STATUS: i32 = -1;

fn checked(status: u32) -> Result<(), Refused> {
    if status == OK {
        Ok(())
    } else {
        Err(Refused(status))
    }
}

/// The request's headers, read in one host call and kept in one string (the SDK's
/// reader allocates twice per header).
pub fn request_headers() -> Result<Headers, Refused> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: both out pointers are valid for the call.
    let status = unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    // A request always has headers: not even "not found" is an answer here.
    checked(status)?;
    let bytes = handed_over(status, data, size)?;
    Ok(bytes.map_or_else(Headers::default, |bytes| Headers::from_map_bytes(&bytes)))
}

/// Replaces every value of a request header.
pub fn set_request_header(name: &str, value: &str) -> Result<(), Refused> {
    // SAFETY: the pointers and sizes describe live `str`s for the call.
    checked(unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_request_header(name: &str) -> Result<(), Refused> {
    // SAFETY: as above.
    checked(unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) })
}

/// Adds a response header value beside any others (each `set-cookie` its own).
pub fn add_response_header(name: &str, value: &str) -> Result<(), Refused> {
    // SAFETY: as above.
    checked(unsafe {
        proxy_add_header_map_value(
            RESPONSE_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Answers the request from the filter (Envoy sends it once the callback returns).
pub fn send_reply(status: u32, headers: &[(String, String)], body: &[u8]) -> Result<(), Refused> {
    let headers = request::map_bytes(headers);
    // SAFETY: as above; no status-code details (null, 0).
    checked(unsafe {
        proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            NO_GRPC_STATUS,
        )
    })
}

/// Lets a paused request (the effective context's) go on to the upstream.
pub fn resume_request() -> Result<(), Refused> {
    // SAFETY: no pointers.
    checked(unsafe { proxy_continue_stream(REQUEST_STREAM) })
}

/// Nanoseconds since the epoch, by Envoy's clock.
pub fn now_nanos() -> Result<u64, Refused> {
    let mut nanos = 0u64;
    // SAFETY: the out pointer is valid for the call.
    checked(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

/// One line in Envoy's log, at proxy-wasm's level (`LogLevel as u32`).
pub fn log(level: u32, message: &str) -> Result<(), Refused> {
    // SAFETY: the pointer and size describe a live `str` for the call.
    checked(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

/// What a host call that hands over bytes returned: `Ok(None)` when the host has
/// nothing under that name. Not inlined: one copy serves every reader.
#[inline(never)]
fn handed_over(status: u32, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>, Refused> {
    if status == NOT_FOUND {
        return Ok(None);
    }
    checked(status)?;
    if data.is_null() {
        return Ok(None);
    }
    // SAFETY: on success the host hands over `size` bytes it allocated through this
    // module's `proxy_on_memory_allocate` (a `Vec` of exactly that capacity), which
    // this function now owns and frees, as the SDK's own readers do.
    Ok(Some(unsafe { Vec::from_raw_parts(data, size, size) }))
}

/// An Envoy attribute (`["source", "address"]`...); `Ok(None)` when it has none.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Refused> {
    let serialized = path.join("\0");
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the path is a live buffer, the out pointers are valid for the call.
    let status =
        unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) };
    handed_over(status, data, size)
}

fn header_value(map_type: u32, name: &str) -> Result<Option<Vec<u8>>, Refused> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the name is a live `str`, the out pointers are valid for the call.
    let status = unsafe {
        proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    handed_over(status, data, size)
}

/// One request header's value (the first, if the client sent several).
pub fn request_header(name: &str) -> Result<Option<Vec<u8>>, Refused> {
    header_value(REQUEST_HEADERS, name)
}

/// One header of the reply to this plugin's dispatched call.
pub fn call_reply_header(name: &str) -> Result<Option<Vec<u8>>, Refused> {
    header_value(CALL_REPLY_HEADERS, name)
}

fn buffer(buffer_type: u32, max_size: usize) -> Result<Option<Vec<u8>>, Refused> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the out pointers are valid for the call.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, 0, max_size, &mut data, &mut size) };
    handed_over(status, data, size)
}

/// Up to `max_size` bytes of the body of the reply to a dispatched call.
pub fn call_reply_body(max_size: usize) -> Result<Option<Vec<u8>>, Refused> {
    buffer(CALL_REPLY_BODY, max_size)
}

/// The plugin's configuration, as Envoy holds it.
pub fn plugin_configuration() -> Result<Option<Vec<u8>>, Refused> {
    buffer(PLUGIN_CONFIGURATION, usize::MAX)
}

/// The value shared by every VM of this Envoy under `key`, and its version for a
/// compare-and-swap (`None` when there is no value).
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Refused> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let mut cas = 0u32;
    // SAFETY: the key is a live `str`, the out pointers are valid for the call.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    let value = handed_over(status, data, size)?;
    Ok((value, (cas != 0).then_some(cas)))
}

/// Stores a shared value; with `cas`, only if it is still that version (a refusal
/// is Envoy's `CasMismatch`).
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused> {
    // SAFETY: the key and value are live buffers for the call.
    checked(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

/// Makes `context_id` the context the next calls act on (a request resumed from
/// the timer or a dispatch reply); `Err` when Envoy no longer has it.
pub fn set_effective_context(context_id: u32) -> Result<(), Refused> {
    // SAFETY: no pointers.
    checked(unsafe { proxy_set_effective_context(context_id) })
}

pub fn set_tick_period(period: std::time::Duration) -> Result<(), Refused> {
    let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no pointers.
    checked(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

/// A foreign function the host registered (Envoy's `verify_signature`, `sign`),
/// called with its serialized arguments; its serialized result, `Ok(None)` when
/// it returned nothing. A host without the function refuses the call (Envoy:
/// `NotFound`, status 1, which is `Ok(None)` here too: the caller tells "absent"
/// from "empty" by the result it expects).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Refused> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: name and arguments are live buffers, the out pointers are valid for
    // the call.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    handed_over(status, data, size)
}
