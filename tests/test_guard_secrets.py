"""Secrets: provider formats and high-entropy assignments flagged and masked; placeholders not."""

import pytest

from bastion.guard.scanners.secrets import SecretsScanner, entropy

SECRETS = SecretsScanner()
# Synthetic values in each provider's published format (none is a real credential).
FAKE = {
    "AWS_ACCESS_KEY": "AKIA" + "Q7XZ3M9KD2LPW4RT",
    "GITHUB_TOKEN": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "GOOGLE_API_KEY": "AIza" + "SyD-3xQ9z8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jih0",
    "STRIPE_KEY": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "SLACK_TOKEN": "xoxb-" + "1234567890-abcdefghijkl",
    "HUGGINGFACE_TOKEN": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "API_KEY": "sk-proj-" + "Zx8Qw3Er5Ty7Ui9Op1As2Df4",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize(("label", "value"), sorted(FAKE.items()))
def test_each_format_is_found_and_masked(label: str, value: str) -> None:
    text = f"here: {value} end"
    result = SECRETS.scan(text)
    assert [(s.label, text[s.start : s.end]) for s in result.spans] == [(label, value)]
    assert result.sanitized == f"here: <{label}> end"


def test_high_entropy_assignments_are_secrets_and_placeholders_are_not() -> None:
    assert SECRETS.scan('password = "Tr0ub4dor&3xK9"').sanitized == 'password = "<ASSIGNED_SECRET>"'
    assert SECRETS.scan("api_key: 9f8e7d6c5b4a3210fedcba98").flagged
    assert not SECRETS.scan("password = xxxxxxxxxx").flagged
    assert not SECRETS.scan("api_key: <your-key-here>").flagged
    assert not SECRETS.scan("token=${API_TOKEN_FROM_ENV}").flagged
    assert not SECRETS.scan("the token is valid for one hour").flagged


def test_zero_width_characters_do_not_hide_a_key() -> None:
    key = FAKE["AWS_ACCESS_KEY"]
    text = f"key {key[:6]}\u200b{key[6:]} ok"
    result = SECRETS.scan(text)
    assert result.flagged and result.sanitized == "key <AWS_ACCESS_KEY> ok"


def test_entropy() -> None:
    assert entropy("aaaa") == 0.0
    assert entropy("abcd") == pytest.approx(2.0)
