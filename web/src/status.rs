//! Status of the server's subsystems, as the UI and the API show it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubsystemState {
    Starting,
    Running,
    /// Turned off in the configuration.
    Off,
    Stopping,
    Failed,
}

impl SubsystemState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Off => "off",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
        }
    }

    /// Whether this state lets the server call itself ready.
    pub fn is_ready(self) -> bool {
        matches!(self, Self::Running | Self::Off)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubsystemView {
    pub name: &'static str,
    pub state: SubsystemState,
    /// What it listens on, or why it failed.
    pub detail: String,
}
