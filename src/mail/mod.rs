//! Outgoing mail: SMTP through lettre, or the log for development.
//!
//! [`Mailer`] is the one face. Messages are plain text; callers never put secrets other than
//! the one-time link itself into them.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, redact_url};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail: {0}")]
    Config(String),
    #[error("mail: `{0}` is not an email address")]
    BadAddress(String),
    #[error("mail: sending failed: {0}")]
    Send(String),
}

#[derive(Clone)]
enum Transport {
    /// Development: the message is written to the log instead of being sent.
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// A message to one person.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    pub fn new(cfg: &MailConfig) -> Result<Self, MailError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|_| MailError::Config(format!("`{}` is not a sender address", cfg.from)))?;
        let url = cfg.url.trim();
        let transport = if url.is_empty() {
            tracing::warn!(
                "mail.url is not set: mail is not sent; each message, sign-in links included, \
                 is written to this log (fine for development, not for a team)"
            );
            Transport::Log
        } else {
            let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| MailError::Config(format!("{}: {e}", redact_url(url))))?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .build();
            Transport::Smtp(t)
        };
        Ok(Self { from, transport })
    }

    /// Sends one message (or logs it, with the log transport).
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.send_answered(mail).await.map(|_| ())
    }

    /// Sends one message and returns what the SMTP server answered (`250 ...`), or `None`
    /// when nothing was sent (the log transport).
    pub async fn send_answered(&self, mail: &Mail) -> Result<Option<String>, MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::BadAddress(mail.to.clone()))?;
        match &self.transport {
            Transport::Log => {
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail (log transport, not sent):\n{}", mail.body);
                Ok(None)
            }
            Transport::Smtp(t) => {
                let msg = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| MailError::Send(e.to_string()))?;
                let answer = t
                    .send(msg)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
                tracing::debug!(subject = %mail.subject, "mail sent");
                Ok(Some(format!(
                    "{} {}",
                    answer.code(),
                    answer.message().collect::<Vec<_>>().join(" ")
                )))
            }
        }
    }
}
