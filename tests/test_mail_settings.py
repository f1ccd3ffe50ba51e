"""The mail settings (Dify's names): MAIL_TYPE=smtp, the SMTP server, TLS modes and the sender."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError

SMTP = {
    "MAIL_TYPE": "smtp",
    "SMTP_SERVER": "mail.example",
    "MAIL_DEFAULT_SEND_FROM": "Sluice <no-reply@x.example>",
}


def test_mail_is_off_by_default() -> None:
    s = Settings.from_env({})
    assert s.mail_type is None
    assert s.smtp_server is None
    assert s.mail_default_send_from is None
    assert s.smtp_port == 25
    assert not s.smtp_use_tls
    assert not s.smtp_opportunistic_tls
    assert s.smtp_username is None
    assert s.smtp_password is None


def test_smtp_environment_is_read() -> None:
    s = Settings.from_env(
        {**SMTP, "SMTP_PORT": "2525", "SMTP_USERNAME": "bot", "SMTP_PASSWORD": "pw", "SMTP_USE_TLS": "false"}
    )
    assert s.mail_type == "smtp"
    assert s.smtp_server == "mail.example"
    assert s.smtp_port == 2525
    assert s.smtp_username == "bot"
    assert s.smtp_password == "pw"
    assert s.mail_default_send_from == "Sluice <no-reply@x.example>"


@pytest.mark.parametrize(
    ("env", "port", "tls", "starttls"),
    [
        ({}, 25, False, False),
        ({"SMTP_USE_TLS": "true"}, 465, True, False),
        ({"SMTP_USE_TLS": "TRUE", "SMTP_OPPORTUNISTIC_TLS": "true"}, 587, True, True),
        ({"SMTP_USE_TLS": "true", "SMTP_PORT": "2465"}, 2465, True, False),
    ],
)
def test_tls_modes_and_default_ports(env: dict[str, str], port: int, tls: bool, starttls: bool) -> None:
    s = Settings.from_env({**SMTP, **env})
    assert (s.smtp_port, s.smtp_use_tls, s.smtp_opportunistic_tls) == (port, tls, starttls)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAIL_TYPE": "sendgrid"}, "sendgrid"),
        ({"MAIL_TYPE": "resend"}, "resend"),
        ({"MAIL_TYPE": "smtp"}, "SMTP_SERVER"),
        ({"MAIL_TYPE": "smtp", "SMTP_SERVER": "mail.example"}, "MAIL_DEFAULT_SEND_FROM"),
        ({"SMTP_USE_TLS": "yes"}, "SMTP_USE_TLS"),
        ({"SMTP_OPPORTUNISTIC_TLS": "true"}, "SMTP_OPPORTUNISTIC_TLS"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
    ],
)
def test_bad_mail_values_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)
