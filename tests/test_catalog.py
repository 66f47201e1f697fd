"""The catalog of providers: a watch that names one, the checks of its component names,
`modbot providers`, and the README's table printed from it."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from modbot.app import App
from modbot.cli.main import main
from modbot.config import catalog
from modbot.config.settings import Settings
from modbot.config.watches import load_watches
from modbot.errors import ConfigError
from tests.conftest import ROOT


def watches_file(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "modbot.toml"
    path.write_text(text)
    return Settings(config=path, database=tmp_path / "s.sqlite3")


def test_the_readme_table_is_the_catalogs() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- providers table:")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- end of providers table -->")
    assert readme[start:end] == catalog.markdown_table(), (
        "README's Providers table differs from the catalog: paste in the output of "
        "`modbot providers --markdown`"
    )


def test_the_catalog_covers_the_providers_the_issue_names() -> None:
    names = set(catalog.names())
    assert {
        "anthropic", "openai", "gemini", "xai", "mistral", "deepseek", "perplexity", "groq",
        "cohere", "together", "fireworks", "huggingface", "openrouter", "azure-openai",
        "aws-bedrock",
    } <= names  # fmt: skip
    for provider in catalog.catalog():
        assert provider.kind in (*catalog.READABLE_KINDS, catalog.UNSUPPORTED), provider.name
        assert provider.supported or "not supported yet" in provider.unsupported
        for sample in provider.samples:
            assert (ROOT / "tests" / "data" / sample).is_file(), sample


def test_a_watch_that_names_only_a_provider_reads_the_catalogs_page(tmp_path: Path) -> None:
    settings = watches_file(tmp_path, '[[watch]]\nname = "o"\nprovider = "openai"\n')
    (watch,) = load_watches(settings)
    assert (watch.url, watch.kind, watch.provider) == (
        "https://status.openai.com",
        "incidentio",
        "openai",
    )


def test_url_and_kind_next_to_a_provider_override_the_catalogs(tmp_path: Path) -> None:
    settings = watches_file(
        tmp_path,
        '[[watch]]\nname = "o"\nprovider = "openai"\nurl = "http://127.0.0.1:9"\nkind = "atom"\n',
    )
    (watch,) = load_watches(settings)
    assert (watch.url, watch.kind, watch.provider) == ("http://127.0.0.1:9", "atom", "openai")


def test_a_misspelt_component_stops_start_up_listing_the_known_ones(tmp_path: Path) -> None:
    settings = watches_file(
        tmp_path, '[[watch]]\nname = "o"\nprovider = "openai"\ncomponents = ["ChatGTP"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_watches(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert "watch 'o': components: 'ChatGTP' is not a component of OpenAI" in message
    assert "known: APIs, ChatGPT, Sora, Codex" in message


def test_a_component_name_is_matched_without_regard_to_case(tmp_path: Path) -> None:
    settings = watches_file(
        tmp_path, '[[watch]]\nname = "c"\nprovider = "anthropic"\ncomponents = ["CLAUDE API"]\n'
    )
    assert load_watches(settings)[0].components == ("CLAUDE API",)


def test_an_unknown_name_on_an_open_list_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = watches_file(
        tmp_path, '[[watch]]\nname = "g"\nprovider = "groq"\ncomponents = ["brand-new-model"]\n'
    )
    with caplog.at_level(logging.WARNING):
        (watch,) = load_watches(settings)
    assert watch.components == ("brand-new-model",)
    assert "'brand-new-model' is not among the names modbot knows for Groq" in caplog.text


def test_google_gets_its_gemini_products_when_the_watch_names_none(tmp_path: Path) -> None:
    (watch,) = load_watches(watches_file(tmp_path, '[[watch]]\nname = "g"\nprovider = "gemini"\n'))
    assert watch.kind == "gcloud"
    assert watch.components == ("Vertex Gemini API", "Gemini on Agent Platform")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('provider = "opneai"', "unknown provider 'opneai' (known: anthropic, openai,"),
        ("", "url: required"),
    ],
)
def test_a_bad_provider_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_watches(watches_file(tmp_path, f'[[watch]]\nname = "x"\n{text}\n'))
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_modbot_provider_is_the_single_watchs_provider() -> None:
    (watch,) = load_watches(Settings(provider="xai"))
    assert (watch.url, watch.kind, watch.provider) == (
        "https://status.x.ai/feed.xml",
        "atom",
        "xai",
    )
    # The defaults of the other two settings (as in a copied .env.example) do not override it.
    (mirror,) = load_watches(Settings(provider="openai", statuspage_url="http://127.0.0.1:9"))
    assert (mirror.url, mirror.kind) == ("http://127.0.0.1:9", "incidentio")


def test_modbot_providers_lists_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    for provider in catalog.catalog():
        assert f"{provider.name}: {provider.display_name} [{provider.standing}]" in out
    assert "NOT SUPPORTED YET: status.mistral.ai (Rootly)" in out
    assert "kind:      datadog (Datadog Status Pages)" in out


@pytest.mark.slow
@pytest.mark.parametrize("provider", [p.name for p in catalog.catalog()])
def test_a_file_that_names_only_a_provider_passes_modbot_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """`modbot check` (no network) accepts every readable provider by name alone, and
    names in one line why one cannot be read."""
    (tmp_path / "modbot.toml").write_text(f'[[watch]]\nname = "w"\nprovider = "{provider}"\n')
    monkeypatch.chdir(tmp_path)
    for name in [n for n in list(__import__("os").environ) if n.startswith("MODBOT_")]:
        monkeypatch.delenv(name)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    code = main(["--env-file", str(_empty_env(tmp_path)), "check"])
    entry = catalog.lookup(provider)
    assert code == 0, out.getvalue()
    # A page no platform modbot reads serves (Mistral's) is watched by ``auto``, in case
    # it moves to one; load_watches says why once (see the test below).
    assert f"{entry.kind if entry.supported else 'auto'}: {entry.page}" in out.getvalue()


def test_an_unreadable_provider_starts_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = watches_file(tmp_path, '[[watch]]\nname = "m"\nprovider = "mistral"\n')
    with caplog.at_level(logging.WARNING):
        (watch,) = load_watches(settings)
    assert (watch.url, watch.kind) == ("https://status.mistral.ai", "auto")
    (said,) = [r.getMessage() for r in caplog.records]
    assert "status.mistral.ai (Rootly) answers" in said
    assert "keeps trying to tell which platform serves the page" in said


async def test_a_file_naming_every_provider_starts(tmp_path: Path) -> None:
    """One [[watch]] per provider, each with only its name: the bot starts with every
    watch wired (a source following its page, a poller, a deliverer), before any poll."""
    text = "".join(
        f'[[watch]]\nname = "{p.name}"\nprovider = "{p.name}"\n' for p in catalog.catalog()
    )
    settings = watches_file(tmp_path, text)
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        sources = {r.watch.name: r.poller.source for r in app.runtimes}
    assert list(sources) == catalog.names()
    for provider in catalog.catalog():
        source = sources[provider.name]
        assert source.kind == (provider.kind if provider.supported else "auto")
        assert source.url.startswith(provider.page.rstrip("/"))


def _empty_env(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


# --- modbot demo --provider ---------------------------------------------------------------

WITH_DEMO = [p.name for p in catalog.catalog() if p.demo_sample]
WITHOUT_DEMO = [p.name for p in catalog.catalog() if not p.demo_sample]


def test_every_shipped_demo_sample_is_a_copy_of_a_real_one() -> None:
    for provider in catalog.catalog():
        if provider.demo_sample.startswith("samples/"):
            shipped = ROOT / "modbot" / "data" / provider.demo_sample
            original = ROOT / "tests" / "data" / "providers" / shipped.name
            assert shipped.read_bytes() == original.read_bytes(), provider.name


@pytest.mark.slow
@pytest.mark.parametrize("provider", WITH_DEMO)
async def test_demo_replays_a_real_incident_of_each_readable_platform(
    tmp_path: Path, provider: str
) -> None:
    from tests.conftest import run_cli

    result = await run_cli("demo", "--delay", "0", "--provider", provider, env={}, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.count("NEW comment") == 1
    entry = catalog.lookup(provider)
    if entry.demo_note:
        assert entry.demo_note in result.out  # another page's incident says so
    assert not list(tmp_path.iterdir())  # the demo leaves no state behind


@pytest.mark.slow
@pytest.mark.parametrize("provider", WITHOUT_DEMO)
async def test_a_provider_without_a_demo_says_why_in_one_line(
    tmp_path: Path, provider: str
) -> None:
    from tests.conftest import run_cli

    result = await run_cli("demo", "--delay", "0", "--provider", provider, env={}, cwd=tmp_path)
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert f"no demo for {provider}:" in line


def test_a_dry_runs_first_failed_poll_names_the_providers_page() -> None:
    """With MODBOT_PROVIDER the page is the catalog's, not MODBOT_STATUSPAGE_URL's default."""
    from modbot.cli.service import _first_poll_note
    from modbot.core.records import PollReport

    settings = Settings(provider="openai")
    (watch,) = load_watches(settings)
    out = io.StringIO()
    _first_poll_note(settings, watch.url, out)(PollReport(ok=False, changed=False, message="x"))
    assert "cannot read https://status.openai.com yet" in out.getvalue()
