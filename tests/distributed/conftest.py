"""Session fixtures: a few hundred tiny photos, their single-machine masks, a local S3 server and
a LocalCluster of two worker processes on loopback.

Everything is started once per session and kept small (32x40 px photos, a 32 px working size,
three iterations) so that the whole folder costs seconds, not minutes, on two shared cores.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("distributed")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from iem.config import IEMConfig  # noqa: E402
from iem.pipeline import segment_files  # noqa: E402

#: Photos in the collection; one more file is corrupt on purpose.
PHOTOS = 240
#: Settings of every run in this folder: the same for the reference and the cluster.
SETTINGS = dict(config=IEMConfig.paper(iterations=3), size=32, batch_size=8)
BROKEN = "sub/broken.png"
BUCKET = "iem-test"


def make_photo(index: int) -> Image.Image:
    """A 32x40 photo: noise, and a brighter rectangle whose place depends on ``index``."""
    rng = np.random.default_rng(index)
    pixels = (rng.random((32, 40, 3)) * 70).astype(np.uint8)
    top, left = 4 + index % 9, 6 + index % 13
    pixels[top : top + 16, left : left + 18] += np.uint8(150)
    return Image.fromarray(pixels)


def read_tree(root: Path) -> Dict[str, bytes]:
    """``relative path -> bytes`` of every mask under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.mask.png"))}


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for index in range(PHOTOS):
        folder = root / ("sub" if index % 3 == 0 else "") / ("deep" if index % 5 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        make_photo(index).save(folder / f"p{index:03d}.png")
    (root / BROKEN).write_bytes(b"not a png at all")
    return root


@pytest.fixture(scope="session")
def reference(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, bytes]:
    """The masks of a single-machine run, the yardstick of every other run."""
    out = tmp_path_factory.mktemp("reference")
    summary = segment_files(photos, out, progress=False, **SETTINGS)
    assert summary.segmented == PHOTOS and summary.failed == 1
    masks = read_tree(out)
    assert len(masks) == PHOTOS
    return masks


@pytest.fixture(scope="session")
def s3(photos: Path) -> Iterator[str]:
    """A local S3-compatible server on 127.0.0.1 holding the photos under ``s3://iem-test/photos``.

    Credentials and the endpoint are given the usual way, in the environment, before the cluster
    starts, so that its workers find them too.
    """
    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        fs.put(f"{photos}/", f"{BUCKET}/photos/", recursive=True)
        yield f"s3://{BUCKET}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture(scope="session")
def client(s3: str) -> Iterator[object]:
    """A LocalCluster of two worker processes on loopback, started the way ``--cluster local:2`` is."""
    from iem.distributed import connect

    with connect("local:2") as dask_client:
        yield dask_client
