"""`make run`'s banner names the mail transport actually in use."""

from __future__ import annotations

from pathlib import Path

from localdev.run import _mail_line

BUNDLE = Path(".local/certs/ca-bundle.pem")
EMULATOR = "https://127.0.0.1:7443"


def test_the_folder_transport_is_named_with_its_folder():
    line = _mail_line({"MAIL_TRANSPORT": "folder", "MAIL_FOLDER": ".local/mail"}, EMULATOR, BUNDLE)

    assert line.startswith("E-mails (MAIL_TRANSPORT=folder): .local/mail/*.eml")


def test_graph_is_named_with_where_to_see_the_mail_and_no_folder():
    line = _mail_line({"MAIL_TRANSPORT": "graph", "MAIL_FOLDER": ".local/mail"}, EMULATOR, BUNDLE)

    assert line.startswith("E-mails (MAIL_TRANSPORT=graph)")
    assert f"{EMULATOR}/_emulator/state" in line
    assert ".eml" not in line


def test_smtp_is_named_with_its_server():
    env = {"MAIL_TRANSPORT": "smtp", "MAIL_SMTP_HOST": "smtp.example.com", "MAIL_SMTP_PORT": "587"}

    assert "smtp.example.com:587" in _mail_line(env, EMULATOR, BUNDLE)
