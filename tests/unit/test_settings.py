"""Settings: the core holds only its own knobs; the API's live with the API, each plug-in declares its own."""

from __future__ import annotations

import pytest

from firstseen.descriptors import plugin_settings
from firstseen.settings import Settings, get_settings
from indexer.settings import get_nightly_settings
from search_api.settings import ApiSettings, get_api_settings

KEY = "k" * 20


def test_the_core_settings_hold_no_shell_or_plugin_knob():
    core = set(Settings.model_fields)
    assert not {f for f in core if f.startswith(("api_", "sscd_", "clip_", "nightly"))}
    assert "onnx_threads" not in core
    assert set(Settings.model_fields) < set(ApiSettings.model_fields)


def test_a_plugin_reads_its_environment_and_overrides_given_to_the_core(monkeypatch):
    monkeypatch.setenv("FIRSTSEEN_SSCD_INPUT_SIZE", "160")
    monkeypatch.setenv("FIRSTSEEN_ONNX_THREADS", "3")
    options = plugin_settings("sscd", get_settings())
    assert (options.sscd_input_size, options.onnx_threads, options.sscd_variant) == (160, 3, "distilled")
    assert plugin_settings("sscd", get_settings(onnx_threads=1, sscd_variant="full")).onnx_threads == 1
    assert plugin_settings("toy", get_settings()) is None  # a plug-in without knobs
    monkeypatch.setenv("FIRSTSEEN_SSCD_INPUT_SIZE", "9")
    with pytest.raises(ValueError):
        plugin_settings("sscd", get_settings())


def test_the_api_and_the_scheduler_read_their_own_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FIRSTSEEN_API_READ_KEYS", f"{KEY}, {KEY}2")
    monkeypatch.setenv("FIRSTSEEN_NIGHTLY_AT", "03:30")
    api = get_api_settings(data_dir=tmp_path)
    assert [k.get_secret_value() for k in api.api_read_keys] == [KEY, f"{KEY}2"] and api.auth_required
    assert api.data_dir == tmp_path and api.resolved_catalog_url().startswith("sqlite:///")
    assert get_nightly_settings().nightly_at == "03:30"
    assert not hasattr(get_settings(), "api_read_keys")
    monkeypatch.setenv("FIRSTSEEN_API_READ_KEYS", "short")
    with pytest.raises(ValueError, match="16 characters"):
        get_api_settings()


def test_the_onnx_device_picks_providers_and_a_missing_gpu_build_is_a_clear_error(monkeypatch):
    from firstseen.descriptors.sscd import execution_providers
    from firstseen.errors import DescriptorUnavailableError

    cpu_only, gpu_build = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert execution_providers("auto", gpu_build) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu", gpu_build) == ["CPUExecutionProvider"]
    assert execution_providers("cuda", gpu_build)[0] == "CUDAExecutionProvider"
    with pytest.raises(DescriptorUnavailableError, match="onnxruntime-gpu"):
        execution_providers("cuda", cpu_only)
    monkeypatch.setenv("FIRSTSEEN_ONNX_DEVICE", "cuda")
    assert plugin_settings("sscd", get_settings()).onnx_device == "cuda"
    with pytest.raises(ValueError):
        plugin_settings("sscd", get_settings(onnx_device="tpu"))


@pytest.mark.parametrize(("variable", "value"), [("FIRSTSEEN_QUERY_FPS", "abc"), ("FIRSTSEEN_ONNX_DEVICE", "tpu")])
def test_a_bad_setting_is_one_line_naming_it_not_a_traceback(monkeypatch, tmp_path, capsys, variable, value):
    from cli.main import main

    monkeypatch.setenv(variable, value)
    image = tmp_path / "still.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (120, 30, 30)).save(image)
    assert main(["search", str(image), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert f"firstseen: error: {variable}={value!r}" in err and "Traceback" not in err
