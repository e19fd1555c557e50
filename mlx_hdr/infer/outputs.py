"""What ``predict`` reads and writes, decided before any work.

Inputs are files, folders and glob patterns; every input gets its own output names, one file
per ``--format`` (``<stem>.hdr``/``.exr``/``.pfm``/``.avif``, ``<stem>_uhdr.jpg`` for the
gain-map JPEG) and a ``<stem>_preview.png`` beside an HDR file; ``-o`` is a folder, or a file
for a single input. A name with a file extension is a file, unless it was given with a
trailing slash (``-o v1.2/``): only then is it created as a folder.
Problems with the outputs are :class:`UsageError`s, raised by :func:`plan_outputs` before a
model is loaded or an image decoded. :func:`write_outputs` writes one input's files.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from mlx_hdr.errors import HDRError, UsageError
from mlx_hdr.infer.tonemap import tonemap
from mlx_hdr.io.atomic import is_file_name, nearest_existing
from mlx_hdr.io.avif import write_avif
from mlx_hdr.io.hdr_io import sanitize_hdr
from mlx_hdr.io.image_io import (
    HDR_SUFFIXES,
    distinct_files,
    is_ldr_file,
    ldr_files,
    write_hdr,
    write_ldr,
)
from mlx_hdr.io.native import (
    P3_FROM_REC709,
    display_p3_base,
    gamut_delta,
    in_display_p3,
    with_wide_gamut,
)
from mlx_hdr.io.own_colours import display_p3_icc, made_display_p3_icc, own_photo
from mlx_hdr.io.photo_meta import read_exif
from mlx_hdr.io.uhdr import UHDR_SUFFIX, write_uhdr

GLOB_CHARS = set("*?[")
PREVIEW_SUFFIX = "_preview.png"
OWN_SUFFIXES = (PREVIEW_SUFFIX, UHDR_SUFFIX)  # how our outputs beside the photos end
JPEG_SUFFIXES = (".jpg", ".jpeg")  # ``-o x.jpg``: the gain-map JPEG
HDR_OUTPUTS = (*HDR_SUFFIXES, ".avif")  # files that hold the HDR rendition alone
FILE_SUFFIXES = (*HDR_OUTPUTS, ".png", *JPEG_SUFFIXES)  # what ``-o FILE`` may name
FORMATS = {"hdr": ".hdr", "exr": ".exr", "pfm": ".pfm", "avif": ".avif", "uhdr": UHDR_SUFFIX}


@dataclass
class Plan:
    """Per input, the files to write (``jobs``); inputs that match nothing (``missing``);
    inputs whose files all exist, left alone (``done``, with ``--skip-existing``)."""

    jobs: list[tuple[Path, list[Path]]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    done: list[Path] = field(default_factory=list)
    own: list[Path] = field(default_factory=list)  # a folder's or glob's files named as ours


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]], list[Path]]:
    """Files, folders and globs. A folder or a glob gives its JPEG/PNG/TIFF/WebP/HEIC/AVIF
    files, sorted, skipping our previews, gain-map JPEGs and HDR AVIFs (so that a run
    writing next to its photos can be run again) and hidden files (an interrupted run's
    temporary files, macOS's ``._`` files); a file named is taken as it is.

    Returns ``(paths, missing, own)``, ``missing`` as ``(input, problem)`` pairs, ``own``
    the files a folder or glob held that are named as our outputs (left out).
    """
    paths, missing, own = [], [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += (found := _photos(listed := ldr_files(p)))
            own += _own(listed) if found else []  # none found: an error says so
            if listed and not found:
                why = "folder holds only mlx-hdr's outputs (name one to take it)"
                missing.append((item, why))
            elif not found:
                missing.append((item, "folder has no JPEG/PNG/TIFF/WebP/HEIC/AVIF images"))
        elif p.exists():
            paths.append(p)
        elif not GLOB_CHARS & set(item):
            if p.suffix and not item.endswith(("/", os.sep)):
                paths.append(p)  # a missing file fails later with read_ldr's message
            else:
                missing.append((item, "no such file or folder"))  # a mistyped folder
        else:
            matched = sorted(Path(q) for q in glob.glob(item, recursive=True))
            photos = [q for q in matched if q.is_file() and is_ldr_file(q)]
            paths += (found := _photos(photos))
            own += _own(photos) if found else []
            if not matched:
                missing.append((item, "no files match this pattern"))
            elif photos and not found:
                why = "it matches only mlx-hdr's outputs or hidden files (name one to take it)"
                missing.append((item, why))
            elif not found:
                missing.append((item, "no JPEG/PNG/TIFF/WebP/HEIC/AVIF photos match it"))
    return distinct_files(paths), missing, distinct_files(own)  # a file named twice: once


def _photos(paths) -> list[Path]:
    """``paths`` without our own outputs (previews, gain-map JPEGs) and hidden files."""
    own = set(_own(paths))
    return [p for p in paths if p not in own and not p.name.startswith(".")]


def _own(paths) -> list[Path]:
    """The ``paths`` named as our outputs are (previews, gain-map JPEGs), hidden ones aside."""
    return [p for p in paths if p.name.endswith(OWN_SUFFIXES) and not p.name.startswith(".")]


def _folders(p: Path, depth: int) -> str:
    """The names of the ``depth`` folders ``p`` lies in, outermost first, joined by ``_``
    (as its absolute path has them: ``../a.jpg`` lies in the folder above)."""
    return "_".join(Path(os.path.abspath(p)).parent.parts[1:][-depth:])


def _ext(p: Path) -> str:
    return p.suffix.lstrip(".").lower()


FOLDER_DEPTH = 4  # folders an output name may take in to tell inputs apart


def _namers():
    """How inputs sharing a stem are told apart, in the order tried: ``<stem>_<ext>``, then
    ``<folders>_<stem>`` and ``<folders>_<stem>_<ext>`` with one folder, two, ..."""
    yield lambda p: f"{p.stem}_{_ext(p)}"
    for d in range(1, FOLDER_DEPTH + 1):
        yield lambda p, d=d: f"{_folders(p, d)}_{p.stem}"
        yield lambda p, d=d: f"{_folders(p, d)}_{p.stem}_{_ext(p)}"


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per input: its stem, or for inputs sharing a stem (ignoring case)
    ``<stem>_<ext>`` when their extensions differ, else ``<folder>_<stem>`` (with the
    extension where the folder does not tell them apart), with as many folders as it takes
    (up to ``FOLDER_DEPTH``). ``UsageError`` when two inputs would still share a name (one
    folder holding ``a.jpg`` and ``a.JPG``: one file on macOS)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in paths:
        groups[p.stem.casefold()].append(p)
    names = {}
    *_, last = namers = list(_namers())  # none tells a group apart: the last names the pair
    for group in groups.values():
        namer = next(
            (f for f in namers if len({f(p).casefold() for p in group}) == len(group)), last
        )
        names.update({p: (namer(p) if len(group) > 1 else p.stem) for p in group})
    seen: dict[str, Path] = {}
    for p in paths:
        other = seen.setdefault(names[p].casefold(), p)
        if other is not p:
            raise UsageError(f"{other} and {p} would get the same output name; rename one", p)
    return [names[p] for p in paths]


def check_output(out: Path, single: bool, folder: bool = False) -> None:
    """``UsageError`` unless ``out`` can be what it names: a folder (with ``folder``, always),
    or for one input a ``.hdr``/``.exr``/``.pfm``/``.avif`` file, a ``.png`` preview or a
    ``.jpg`` gain-map JPEG (never TIFF or HEIC)."""
    if out.is_dir():
        return
    if folder or not is_file_name(out):
        if out.exists():
            raise UsageError("exists and is not a folder", out)
        return  # a folder to create
    if out.suffix.lower() not in FILE_SUFFIXES:
        kinds = "/".join(FILE_SUFFIXES)
        raise UsageError(
            f"cannot write this type: name a folder (a new one with a dot ends in /) or a "
            f"{kinds} file",
            out,
        )
    if not single:
        raise UsageError("is a file name, but there are several inputs; name a folder", out)


def output_paths(stem: str, out: Path, single: bool, opts) -> list[Path]:
    """The files to write for one input: [one per format..., preview?].

    ``out`` is a folder (``OUT/<stem>.hdr`` and the like, ``OUT/<stem>_uhdr.jpg`` for the
    gain-map JPEG, ``OUT/<stem>_preview.png``) unless a single input names a file:
    ``-o x.exr`` (or .avif) writes x.exr (+ x_preview.png), ``-o x.jpg`` the gain-map JPEG
    x.jpg, ``-o x.png`` only the preview x.png. The preview comes with an HDR file unless
    ``opts.preview`` says otherwise. ``opts``: the ``formats``, ``preview`` and
    ``preview_only`` of :class:`~mlx_hdr.infer.pipeline.PredictOptions`.
    """
    if single and is_file_name(out):
        if out.suffix.lower() == ".png":
            return [out]
        main, preview = [out], out.with_name(out.stem + PREVIEW_SUFFIX)
    else:
        main = [out / f"{stem}{FORMATS[fmt]}" for fmt in opts.formats]
        preview = out / f"{stem}{PREVIEW_SUFFIX}"
    if opts.preview_only:
        return [preview]
    wanted = opts.preview
    if wanted is None:
        wanted = any(p.suffix.lower() in HDR_OUTPUTS for p in main)
    return [*main, preview] if wanted else main


def file_id(path: Path) -> tuple[int, int] | None:
    """``(device, inode)``: one file under every name it has; None where the file is gone
    or its file system gives no inode numbers (0: some network and FUSE mounts)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


def plan_outputs(inputs: list[str], out: Path, opts, folder: bool = False) -> Plan:
    """Expand ``inputs`` and name every output; ``UsageError`` for an ``out`` that cannot
    be written, two inputs with one output name, or an output that is an input. With
    ``opts.skip_existing``, an input whose outputs all exist is put in ``done``, not run.
    ``folder``: ``out`` is a folder whatever its name (given with a trailing slash). Files
    named as outputs that this run would not write are listed in ``own`` (left out)."""
    paths, missing, own = expand_inputs(inputs)
    check_output(out, len(paths) == 1, folder)
    single = len(paths) == 1 and not folder  # one photo, however named: -o may name its file
    sources = {p.resolve() for p in paths}
    inodes = {file_id(p) for p in paths} - {None}  # a name in another case (macOS), a link
    plan, planned, stems = Plan(missing=missing), set(), output_stems(paths)
    for src, stem in zip(paths, stems, strict=True):
        dests = output_paths(stem, out, single, opts)
        planned |= {str(d.resolve()).casefold() for d in dests}
        for dest in dests:
            if dest.resolve() in sources or file_id(dest) in inodes:  # None: not there
                raise UsageError(f"output {dest} would overwrite an input; choose another -o", src)
            if dest.is_dir():
                raise UsageError(f"output {dest} is a folder; choose another -o", src)
        if getattr(opts, "skip_existing", False) and all(d.is_file() for d in dests):
            plan.done.append(src)  # written whole by an earlier run (writes are atomic)
        else:
            plan.jobs.append((src, dests))
    check_writable({d.parent for _, dests in plan.jobs for d in dests})
    plan.own = _not_ours(own, planned, {*stems, *(p.stem for p in paths)})
    return plan


def _not_ours(own: list[Path], planned: set[str], stems: set[str]) -> list[Path]:
    """The files named as our outputs (``own``) that are none of this run's (``planned``:
    resolved paths, casefolded) nor another format's output of one of its photos
    (``<stem>_preview.png`` or ``<stem>_uhdr.jpg`` for a ``stems`` of its inputs or
    outputs); names compared ignoring case (one file on macOS)."""
    folded = {s.casefold() for s in stems}
    base = {p: next(p.name[: -len(e)] for e in OWN_SUFFIXES if p.name.endswith(e)) for p in own}
    kept = [p for p in own if str(p.resolve()).casefold() not in planned]
    return [p for p in kept if base[p].casefold() not in folded]


def check_writable(folders) -> None:
    """``HDRError`` naming the first of ``folders`` that cannot be written into: the nearest
    existing folder on its way (what would be created from) is read-only or not ours;
    ``UsageError`` where that nearest existing path is a file."""
    for folder in sorted(folders):
        base = nearest_existing(folder)
        if base.exists() and not base.is_dir():
            raise UsageError("is a file, not a folder: choose another -o", base)
        if base.is_dir() and not os.access(base, os.W_OK | os.X_OK):
            why = "read-only file system or no permission"
            raise HDRError(f"cannot write here ({why})", folder if base == folder else base)


def write_outputs(
    src: Path, dests: list[Path], ldr: np.ndarray, hdr: np.ndarray, opts
) -> list[Path]:
    """Write ``dests`` by extension (``.png`` the preview, ``.jpg`` the gain-map JPEG,
    ``.avif`` the PQ AVIF, else the HDR file) from the photo ``ldr`` (HxWx3 display sRGB, as
    loaded) and its reconstruction ``hdr`` (HxWx3 scene-linear, 1.0 = white); ``opts``: the
    ``PredictOptions``. A wide-gamut photo's colours outside sRGB (:mod:`mlx_hdr.io.native`,
    its pixels decoded once) are given back, unless ``opts.wide_gamut`` is False, to the
    outputs that hold them with values >= 0: the AVIF; the gain-map JPEG, on a Display P3
    base (a Display P3 photo's own pixels, another wide photo's colours converted: Adobe
    RGB, ProPhoto); the preview, in Display P3. The EXR/PFM get them, as Rec.709 values
    below 0, only where it is True."""
    keep = opts.wide_gamut is not False
    hdr = sanitize_hdr(hdr, src)  # NaN, inf, below 0: said once, for every output
    photo = cache(lambda: own_photo(src))  # the file's own pixels, decoded once

    @cache
    def wide() -> np.ndarray:  # the reconstruction with the photo's own colours
        delta = gamut_delta(photo(), ldr) if keep else None
        return hdr if delta is None else with_wide_gamut(hdr, ldr, delta)

    done = []
    try:
        for dest in dests:
            _write_one(dest, src, ldr, hdr, opts, photo, wide)
            done.append(dest)
    except (HDRError, OSError, KeyboardInterrupt) as exc:
        exc.written = done  # what was written before it (or before a Ctrl-C): reported
        raise
    return dests


def _write_one(dest: Path, src: Path, ldr, hdr, opts, photo, wide) -> None:
    """One output of :func:`write_outputs`, by ``dest``'s extension; ``photo`` and ``wide``
    give the photo's own colours and the reconstruction with them (computed once)."""
    keep = opts.wide_gamut is not False
    suffix = dest.suffix.lower()
    if suffix == ".png":  # a wide photo's preview in Display P3, with its colours
        shown = tonemap(hdr, opts.tonemap, opts.exposure_ev)
        own = wide() if keep and photo() is not None else hdr
        if own is not hdr and opts.tonemap == "exposure":  # clipped channel by channel
            shown = tonemap(own @ P3_FROM_REC709.T, "exposure", opts.exposure_ev)
        elif own is not hdr:
            shown = in_display_p3(shown, hdr, own)
        p3 = (photo().p3_icc or made_display_p3_icc()) if own is not hdr else None
        write_ldr(dest, shown, icc=p3)
    elif suffix in JPEG_SUFFIXES:  # else an sRGB base: the fitted colours
        p3_base = keep or display_p3_icc(src) is not None  # a P3 photo's: its own pixels
        native = display_p3_base(photo(), ldr.shape[:2], convert=keep) if p3_base else None
        own = wide() if native is not None else None
        exif = read_exif(src, ldr.shape[1::-1])  # the base's size, turned and downscaled
        write_uhdr(dest, ldr, hdr, exif, opts.uhdr, native, own)
    elif suffix == ".avif":
        write_avif(dest, wide())
    else:
        extended = suffix != ".hdr" and opts.wide_gamut is True  # values below 0
        write_hdr(dest, wide() if extended else hdr, dtype=opts.dtype)
