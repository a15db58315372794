"""What the Ray executor refuses, with its reason: a GPU actor where onnxruntime has no CUDA
provider (one clear error, not a CPU run on a GPU slot), and a pool of no actors."""

from __future__ import annotations

import pytest
from clips import make_distinct_clip
from conftest import require_scale

from firstseen.errors import FirstSeenError
from firstseen.ingest.manifest import collect_inputs
from firstseen.ingest.shared import ingest_shared
from firstseen.settings import get_settings

ray = require_scale("ray")


@pytest.fixture(scope="module")
def ray_with_a_gpu():
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.timeout(300)
def test_a_gpu_actor_without_onnxruntime_gpu_stops_the_run_with_the_reason(tmp_path, ray_with_a_gpu):
    import onnxruntime

    from firstseen.ingest.ray_executor import ray_executor

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    drop = tmp_path / "drop"
    drop.mkdir()
    make_distinct_clip(drop / "clip.mp4", 5, seconds=2.0)
    settings = get_settings(data_dir=tmp_path / "data", archive_fps=4)
    executor = ray_executor(None, settings)
    assert executor.actor_gpus == 1.0
    with pytest.raises(FirstSeenError, match="could not start.*onnxruntime-gpu") as raised:
        ingest_shared(settings, collect_inputs([drop], []), executor=executor)
    assert len(str(raised.value)) < 400  # the reason, not Ray's remote traceback


def test_a_ray_ingest_with_no_actors_is_refused_before_anything_starts(tmp_path, capsys):
    from cli.main import main

    (tmp_path / "drop").mkdir()
    code = main(
        ["ingest", str(tmp_path / "drop"), "--executor", "ray", "--ray-actors", "0", "--data-dir", str(tmp_path)]
    )
    assert code != 0 and "--ray-actors must be at least 1" in capsys.readouterr().err
