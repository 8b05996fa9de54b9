//! The typed client of the admin API: requests and answers are `rampart-api` types, and a
//! non-2xx answer is an [`ApiFailure`] holding the API's [`ErrorBody`].

use anyhow::{Context, Result};
use rampart_api::ErrorBody;
use rampart_model::{EnumName, Environment, parse_name};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cmd::ClientArgs;
use crate::output::Reported;

/// An HTTP client of the admin API.
pub(crate) struct Api {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Api {
    pub(crate) fn new(c: &ClientArgs) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            http,
            server: c.server.trim_end_matches('/').to_owned(),
            token: c.token.clone().filter(|t| !t.trim().is_empty()),
        })
    }

    /// `GET path`, decoded as `T` (a `rampart-api` type, or a `Value` to print as it is).
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(reqwest::Method::GET, path, None::<&()>).await
    }

    /// `GET /v1/envs/{env}{rest}`, after checking the environment's name (no call is made for
    /// a bad one); returns the environment too.
    pub(crate) async fn get_env<T: DeserializeOwned>(
        &self,
        env: &str,
        rest: &str,
    ) -> Result<(Environment, T)> {
        let env = parse_env(env)?;
        Ok((env, self.get(&format!("/v1/envs/{env}{rest}")).await?))
    }

    /// `POST path` with a JSON body, the answer decoded as `T`.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// One call; a failure is reported on stderr and returned as [`Reported`].
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.server);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.trim());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "error: cannot reach the control plane at {}: {}",
                    self.server,
                    error_chain(&e)
                );
                return Err(Reported.into());
            }
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {method} {path}: cannot read the response: {e}");
                return Err(Reported.into());
            }
        };
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                if serde_json::from_str::<Value>(&text).is_ok() {
                    eprintln!("error: {method} {path}: unexpected response: {e}");
                } else {
                    eprintln!("error: {method} {path}: the response is not JSON");
                }
                Reported.into()
            });
        }
        Err(ApiFailure {
            status: status.as_u16(),
            body: serde_json::from_str(&text).ok(),
            text: text.trim().to_owned(),
            what: format!("{method} {path}"),
        }
        .into())
    }
}

/// A non-2xx answer, not yet reported (some callers handle a 404 themselves).
#[derive(Debug)]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    /// The API's error body; `None` when the answer was not one (a proxy's page).
    body: Option<ErrorBody>,
    /// The answer as text, shown when it was not an error body.
    text: String,
    what: String,
}

impl ApiFailure {
    /// The error's message.
    pub(crate) fn message(&self) -> &str {
        self.body.as_ref().map_or(&self.text, |b| &b.message)
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.body.as_ref().map_or("error", |b| b.error.as_str());
        let message = self.message();
        let hint = match self.status {
            401 => " (check --token or RAMPART_TOKEN)",
            403 => " (this token's role may not do this)",
            _ => "",
        };
        write!(
            f,
            "{} failed: {} {code}: {message}{hint}",
            self.what, self.status
        )?;
        let Some(body) = &self.body else {
            return Ok(());
        };
        if let Some(id) = &body.change_id {
            write!(f, "\n  change {id} was recorded as rejected")?;
        }
        for field in &body.fields {
            let (path, msg) = (&field.path, &field.message);
            if path.is_empty() {
                write!(f, "\n  {msg}")?;
            } else {
                write!(f, "\n  {path}: {msg}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// An environment named on the command line.
pub(crate) fn parse_env(env: &str) -> Result<Environment> {
    parse_name::<Environment>("environment", env).map_err(|e| {
        anyhow::anyhow!(
            "unknown environment `{}` (expected dev, staging or prod)",
            e.value
        )
    })
}

pub(crate) fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Run a client command on a fresh runtime.
pub(crate) fn client<F, Fut>(c: &ClientArgs, f: F) -> Result<()>
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let api = Api::new(c)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f(api))
}
