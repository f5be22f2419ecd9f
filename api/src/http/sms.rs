//! Sending login codes by SMS through the operator's gateway: an HTTP webhook whose URL is a
//! template (`BUNKER_SMS_URL`, e.g. `https://sms.example/send?to={phone}&text={message}`), as
//! upstream's custom SMS gateway. Each code is one `POST` of `{"phone": ..., "message": ...}` to
//! the URL with `{phone}` and `{message}` filled in (percent-encoded), with `BUNKER_SMS_AUTHORIZATION`
//! as its `Authorization` header if set; no redirect is followed, ten seconds at most, and a 2xx is
//! a delivery. Never logged: a failed delivery is logged without its number or code.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};

use crate::http::mail::MailError;

/// Sends login codes by SMS.
pub struct SmsSender {
    template: SecretString,
    authorization: Option<SecretString>,
    client: reqwest::Client,
}

impl SmsSender {
    /// The sender the settings describe, if any: the template must make an `http(s)://` URL.
    pub fn from_settings(
        url: Option<&SecretString>,
        authorization: Option<&SecretString>,
    ) -> Result<Option<SmsSender>, MailError> {
        let Some(template) = url else {
            return Ok(None);
        };
        let sample = fill(template.expose_secret(), "+15550100", "000000");
        let parsed = url::Url::parse(&sample).map_err(|_| MailError::SmsUrl)?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
            return Err(MailError::SmsUrl);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|_| MailError::SmsUrl)?;
        Ok(Some(SmsSender {
            template: template.clone(),
            authorization: authorization.cloned(),
            client,
        }))
    }

    /// Sends `code` to the E.164 number `to`. The error says what failed, never to whom or what.
    pub async fn send_code(&self, to: &str, code: &str, title: &str) -> Result<(), &'static str> {
        let message = format!(
            "Your sign-in code for {title} is {code}. It works once, for {} minutes.",
            bunker_services::login::CODE_SECONDS / 60
        );
        let url = fill(self.template.expose_secret(), to, &message);
        let mut request = self
            .client
            .post(url)
            .json(&serde_json::json!({"phone": to, "message": message}));
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization.expose_secret());
        }
        match request.send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(_) => Err("the SMS gateway refused the message"),
            Err(_) => Err("the SMS gateway could not be reached"),
        }
    }
}

/// The template with `{phone}` and `{message}` filled in, percent-encoded.
fn fill(template: &str, phone: &str, message: &str) -> String {
    template
        .replace(
            "{phone}",
            &utf8_percent_encode(phone, NON_ALPHANUMERIC).to_string(),
        )
        .replace(
            "{message}",
            &utf8_percent_encode(message, NON_ALPHANUMERIC).to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_percent_encoded_and_must_be_a_web_url() {
        assert_eq!(
            fill(
                "https://sms.example/send?to={phone}&text={message}",
                "+447911123456",
                "a b&c"
            ),
            "https://sms.example/send?to=%2B447911123456&text=a%20b%26c"
        );
        let ok = SecretString::from("https://sms.example/hook".to_owned());
        assert!(SmsSender::from_settings(Some(&ok), None).unwrap().is_some());
        for bad in [
            "ftp://sms.example/{phone}",
            "not a url",
            "/send?to={phone}",
            "mailto:sms@example.com",
        ] {
            let bad = SecretString::from(bad.to_owned());
            assert!(
                SmsSender::from_settings(Some(&bad), None).is_err(),
                "refused"
            );
        }
        assert!(SmsSender::from_settings(None, None).unwrap().is_none());
    }
}
