//! Sending login codes by e-mail: over SMTP (`BUNKER_SMTP_URL`, lettre), or appended to a local
//! file (`BUNKER_MAIL_LOG`, what `bunker demo` does, so that a newcomer can sign in). Never into the
//! server's log: a failed delivery is logged without its address or code.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How login codes are sent by e-mail.
#[derive(Clone, Debug, Default)]
pub struct MailSettings {
    /// `smtp://` or `smtps://` URL of the relay, with its credentials (lettre's URL form).
    pub smtp_url: Option<SecretString>,
    /// Append each message to this file instead of sending it.
    pub log_file: Option<PathBuf>,
    /// The From of every message (`BUNKER_MAIL_FROM`).
    pub from: Option<String>,
    /// The SMS gateway's URL template, for login by phone (`BUNKER_SMS_URL`; see `http::sms`).
    pub sms_url: Option<SecretString>,
    /// The `Authorization` header of each SMS request (`BUNKER_SMS_AUTHORIZATION`).
    pub sms_authorization: Option<SecretString>,
}

/// Why the mail settings cannot be used; names the setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("BUNKER_SMTP_URL is not a usable smtp:// or smtps:// URL")]
    SmtpUrl,
    #[error("BUNKER_MAIL_FROM is not an e-mail address (`Name <address>` or `address`)")]
    From,
    #[error("BUNKER_SMS_URL is not an http:// or https:// URL template")]
    SmsUrl,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log(PathBuf, tokio::sync::Mutex<()>),
}

/// Sends login codes by e-mail.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// The From of login-code e-mails when `BUNKER_MAIL_FROM` is not set.
pub const DEFAULT_FROM: &str = "Bunker <no-reply@localhost>";

impl Mailer {
    /// The mailer the settings describe, if any (the SMTP relay wins over the file).
    pub fn from_settings(settings: &MailSettings) -> Result<Option<Arc<Mailer>>, MailError> {
        let from: Mailbox = settings
            .from
            .as_deref()
            .unwrap_or(DEFAULT_FROM)
            .parse()
            .map_err(|_| MailError::From)?;
        let transport = match (&settings.smtp_url, &settings.log_file) {
            (Some(url), _) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| MailError::SmtpUrl)?
                    .build(),
            ),
            (None, Some(path)) => Transport::Log(path.clone(), tokio::sync::Mutex::new(())),
            (None, None) => return Ok(None),
        };
        Ok(Some(Arc::new(Mailer { transport, from })))
    }

    /// Where messages go, for the start-up banner: the file, or "SMTP".
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP (BUNKER_SMTP_URL)".to_owned(),
            Transport::Log(path, _) => path.display().to_string(),
        }
    }

    /// Sends `code` to `to`. The error says what failed, never to whom or what.
    pub async fn send_code(&self, to: &str, code: &str, title: &str) -> Result<(), &'static str> {
        let to: Mailbox = to.parse().map_err(|_| "the address is not deliverable")?;
        // Short lines, so that the body goes as plain 7-bit text.
        let body = format!(
            "Your sign-in code for {title} is {code}.\n\n\
             It works once, for {} minutes.\n\
             If you did not ask for it, ignore this message:\n\
             no one can sign in without the code.\n",
            bunker_services::login::CODE_SECONDS / 60
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            // The tenant's title only in the body: in a header, an encoded word (`=?utf-8?b?...?=`)
            // would show what the title's rules refuse.
            .subject("Your sign-in code")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|_| "the message could not be built")?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|_| "the SMTP relay refused or could not be reached"),
            Transport::Log(path, lock) => {
                let _held = lock.lock().await;
                let path = path.clone();
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || append(&path, &bytes))
                    .await
                    .map_err(|_| "the mail file could not be written")?
            }
        }
    }
}

/// Appends one message to the mail file (created readable by its owner only).
fn append(path: &std::path::Path, message: &[u8]) -> Result<(), &'static str> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|_| "the mail file could not be opened")?;
    file.write_all(message)
        .and_then(|()| file.write_all(b"\n\n"))
        .map_err(|_| "the mail file could not be written")
}
