"""Runtime settings (FIRSTSEEN_* environment variables), built on demand by get_settings()."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Comma-separated in the environment (FIRSTSEEN_INGEST_DROP_DIRS=/a,/b), so no JSON quoting.
PathList = Annotated[list[Path], NoDecode]


def split_list(value: object) -> object:
    """A comma-separated environment value as a list; lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """The core's knobs. The shells extend it with their own (search_api/settings.py for the API,
    indexer/settings.py for the schedule) and each descriptor plug-in declares its own; core
    functions get the few values they use as parameter objects (params.py), not this object.
    Nothing reads the environment at import time."""

    # Inputs stay out of validation errors: they may hold API keys or a catalog password. Keyword
    # arguments no field takes are kept (model_extra) for the plug-ins' settings (descriptors/).
    model_config = SettingsConfigDict(env_prefix="FIRSTSEEN_", extra="allow", hide_input_in_errors=True)

    data_dir: Path = Path("firstseen-data")
    catalog_url: str | None = None  # default: SQLite inside data_dir
    # where the vectors live: unset or file: (FAISS files in data_dir), milvus://host:19530/db, or a
    # Milvus Lite file (milvus-lite:///path/index.db); storage/milvus_index.py
    index_url: str | None = None

    descriptor: str = "sscd"  # a registered plug-in; its own knobs live with it (descriptors/)

    descriptor_batch_size: int = Field(32, ge=1, le=1024)

    archive_fps: float = Field(1.0, gt=0, le=30)  # frames sampled per footage second at ingest
    decode_max_side: int = Field(360, ge=64, le=4096)  # frames are downscaled while decoding
    decode_threads: int = Field(0, ge=0, le=64)  # 0 lets FFmpeg choose
    checkpoint_every_s: float = Field(30.0, gt=0)  # index is saved at least this often in a run
    max_truncation_s: float = Field(2.0, ge=0)  # decoded footage may fall short by this much

    # Search: queries are sampled more densely than the archive so that some query frame
    # always lies near each archived one, whatever the speed or sampling phase.
    query_fps: float = Field(4.0, gt=0, le=60)
    query_dense_below_s: float = Field(3.0, ge=0)  # shorter clips: every frame is described
    query_max_frames: int = Field(480, ge=1)  # longer clips are sampled more sparsely to fit
    query_max_duration_s: float = Field(3600.0, gt=0)
    image_max_pixels: int = Field(50_000_000, ge=1)  # stills above this are refused before decoding
    search_neighbours: int = Field(32, ge=1, le=1024)  # k of the k-NN per query frame
    search_candidates: int = Field(20, ge=1)  # videos aligned per query
    calibration_path: Path | None = None  # default: the calibration shipped with the package
    # Background descriptors for score normalisation, one folder per descriptor configuration,
    # built by scripts/build_background.py (`make background`).
    background_dir: Path = Path("~/.cache/firstseen/background")
    # Geometric verification (local features + RANSAC) of the best frame pairs of each candidate.
    verify_videos: int = Field(6, ge=1, le=100)  # candidate videos verified per query, best first
    verify_pairs: int = Field(3, ge=1, le=20)  # frame pairs checked per candidate's best segment
    verify_min_inliers: int = Field(12, ge=6)  # a pair agreeing on fewer points is not verified
    # Grey JPEGs of sampled frames kept beside the raw vectors (longer side, pixels); 0 keeps none,
    # and verification then decodes the archived file.
    thumbnail_max_side: int = Field(320, ge=0, le=1024)

    # On-screen text (text_pass.py): read after ingest from a frame every ocr_every_s seconds at
    # ocr_max_side pixels, with Tesseract's language packs (comma-separated). ocr=false turns it off.
    ocr: bool = True
    ocr_languages: str = "eng,rus,kor"
    ocr_every_s: float = Field(2.0, gt=0)
    ocr_max_side: int = Field(1280, ge=320, le=4096)

    # Nightly ingestion (`firstseen ingest` with no inputs, `firstseen nightly`): comma-separated lists.
    ingest_drop_dirs: PathList = Field(default_factory=list)  # folders walked for new video files
    ingest_manifests: PathList = Field(default_factory=list)  # JSONL/CSV manifests re-read every run
    ingest_max_attempts: int = Field(3, ge=1, le=100)  # a video failing this often is quarantined
    # shared ingest (--shared): files claimed at a time, and how long a claim lives unrenewed
    # (a killed process's files are taken again after it)
    ingest_shared: bool = False  # the nightly run and `ingest` take the shared path (job ledger)
    ingest_claim_batch: int = Field(4, ge=1, le=1000)
    ingest_lease_s: float = Field(900.0, gt=0)
    lock_wait_s: float = Field(600.0, ge=0)  # reindex and backup wait this long for a running writer

    # Index lifecycle: exact below the threshold, a trained IVF main index above it.
    index_ivf_min_vectors: int = Field(200_000, ge=1)
    index_nlist: int = Field(0, ge=0)  # 0: about 8 sqrt(N), a power of two
    index_nprobe: int = Field(0, ge=0)  # IVF lists searched per query; 0: what the build chose
    index_retrain_growth: float = Field(2.0, gt=1)  # retrain once the archive outgrows its IVF this much

    @field_validator("data_dir", "background_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("ingest_drop_dirs", "ingest_manifests", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        return split_list(value)

    def resolved_catalog_url(self) -> str:
        from firstseen.datadir import DataDir

        return DataDir(self.data_dir).catalog_url(self.catalog_url)


def get_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
