//! One request line in, one response line out: the framing's types and its errors
//! (`bad_json`, `bad_request`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::{ControlError, ErrorCode};

/// One request line, before its command is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed back in the response; any JSON value (`null` when absent).
    #[serde(default)]
    pub id: Value,
    /// The command, `area.verb` (see [`Command::NAMES`](super::Command::NAMES)).
    pub cmd: String,
    /// The command's arguments: an object, or `null`/absent for none.
    #[serde(default)]
    pub args: Value,
}

/// A line that is not a request; the response echoes `id` if one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The request's `id` when the line was an object that had one, else `null`.
    pub id: Value,
    /// `bad_json` or `bad_request`.
    pub error: ControlError,
}

impl Request {
    /// Parse one request line (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Request, RequestError> {
        let fail =
            |id: Value, code: ErrorCode, message: String| RequestError { id, error: ControlError::new(code, message) };
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| fail(Value::Null, ErrorCode::BadJson, format!("invalid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(fail(
                Value::Null,
                ErrorCode::BadRequest,
                format!("a request must be a JSON object, got {}", describe(&value)),
            ));
        };
        let id = object.remove("id").unwrap_or(Value::Null);
        let cmd = match object.remove("cmd") {
            Some(Value::String(cmd)) => cmd,
            Some(other) => {
                return Err(fail(
                    id,
                    ErrorCode::BadRequest,
                    format!("`cmd` must be a string, got {}", describe(&other)),
                ))
            }
            None => return Err(fail(id, ErrorCode::BadRequest, "missing `cmd`".into())),
        };
        let args = object.remove("args").unwrap_or(Value::Null);
        if let Some(field) = object.keys().next() {
            return Err(fail(
                id,
                ErrorCode::BadRequest,
                format!("unknown field `{field}` in request (expected id, cmd, args)"),
            ));
        }
        Ok(Request { id, cmd, args })
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireResponse", try_from = "WireResponse")]
pub struct Response {
    /// The request's `id`, echoed.
    pub id: Value,
    /// `ok: true` with `result`, or `ok: false` with `error`.
    pub outcome: Result<Value, ControlError>,
}

impl Response {
    /// A successful response.
    pub fn success(id: Value, result: Value) -> Response {
        Response { id, outcome: Ok(result) }
    }

    /// A failed response.
    pub fn failure(id: Value, error: ControlError) -> Response {
        Response { id, outcome: Err(error) }
    }

    /// The response as one line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            // A result holding a non-string map key or similar: report, never panic.
            let fallback = Response::failure(self.id.clone(), ControlError::from(e));
            serde_json::to_vec(&fallback).expect("an error response always serializes")
        });
        line.push(b'\n');
        line
    }
}

/// The wire shape of [`Response`].
#[derive(Serialize, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Value,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ControlError>,
}

impl From<Response> for WireResponse {
    fn from(r: Response) -> WireResponse {
        match r.outcome {
            Ok(result) => WireResponse { id: r.id, ok: true, result: Some(result), error: None },
            Err(error) => WireResponse { id: r.id, ok: false, result: None, error: Some(error) },
        }
    }
}

impl TryFrom<WireResponse> for Response {
    type Error = String;

    fn try_from(w: WireResponse) -> Result<Response, String> {
        match (w.ok, w.error) {
            (true, None) => Ok(Response::success(w.id, w.result.unwrap_or(Value::Null))),
            (false, Some(error)) => Ok(Response::failure(w.id, error)),
            (true, Some(_)) => Err("response has ok: true and an error".into()),
            (false, None) => Err("response has ok: false but no error".into()),
        }
    }
}

/// How a value reads in an error message: its JSON type, and short values themselves.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a long string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_have_the_documented_shape() {
        let ok = Response::success(json!(7), json!({"udp": 120}));
        assert_eq!(String::from_utf8(ok.to_line()).unwrap(), "{\"id\":7,\"ok\":true,\"result\":{\"udp\":120}}\n");
        let err = Response::failure(json!(7), ControlError::bad_args("udp", "nope"));
        let line = String::from_utf8(err.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"id\":7,\"ok\":false,\"error\":{\"code\":\"bad_args\",\"message\":\"nope\",\"field\":\"udp\"}}\n"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, err);
        assert!(serde_json::from_str::<Response>(r#"{"id":1,"ok":false}"#).is_err());
        let unknown: Response =
            serde_json::from_str(r#"{"id":1,"ok":false,"error":{"code":"rate_limited","message":"slow down"}}"#)
                .unwrap();
        assert_eq!(unknown.outcome.unwrap_err().code, ErrorCode::Unknown("rate_limited".into()));
    }
}
