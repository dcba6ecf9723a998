use std::time::Duration;

use tollgate_api::{ApiError, ErrorCode};

/// A failure to get a usable answer from an upstream, before its status is known or while its
/// body is read.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the upstream")]
    Connect,
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream sent nothing for {0:?} in the middle of a stream")]
    IdleTimeout(Duration),
    #[error("the upstream closed the connection before the response was complete")]
    Disconnected,
    #[error("the upstream's response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the upstream's stream has an event larger than {0} bytes")]
    EventTooLarge(usize),
    #[error("the upstream request failed: {0}")]
    Transport(String),
}

impl ProviderError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Timeout(_) | Self::IdleTimeout(_) => ErrorCode::UpstreamTimeout,
            Self::Connect
            | Self::Disconnected
            | Self::TooLarge(_)
            | Self::EventTooLarge(_)
            | Self::Transport(_) => ErrorCode::UpstreamError,
        }
    }

    /// The error a client receives; `deployment` names the deployment (never its URL or key).
    pub fn to_api_error(&self, deployment: &str) -> ApiError {
        ApiError::new(self.code(), format!("deployment `{deployment}`: {self}"))
    }
}
