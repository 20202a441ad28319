"""The ``xtract-mixin`` command (also ``./xtract_mixin.py``): separate songs with MiXiN.

``main`` first checks everything that needs no network runtime — the flags, the ``--filename``
template, the output folders, the inputs (they exist and libsndfile or ffmpeg reads them), output
collisions, existing outputs without ``--overwrite``, the model files and the backend — and only
then imports ONNX Runtime or TensorFlow and loads the models. Every problem is one ``error: ...`` line on stderr; a summary
line follows only when several inputs were given and some failed. Nothing is created on disk for
an input that is not separated.
"""

from __future__ import annotations

import argparse
import logging
import os
import string
import sys
from collections.abc import Sequence

from .. import __version__, params
from ..backends import BACKENDS
from ..errors import MixinError
from . import script_parser

log = logging.getLogger("mixin")

#: The original MiXiN's output names.
DEFAULT_TEMPLATE = "{name}_{stem}.wav"

#: Fields of a ``--filename`` template.
FIELDS = {
    "name": "the input's file name without its extension",
    "parent": "the name of the input's folder",
    "stem": "harmonic, percussive or vocal",
    "ext": "the input's extension without the dot",
}

#: ``--format`` choices (see :data:`mixin.io.SUBTYPES`).
SAMPLE_FORMATS = ("float32", "pcm16", "pcm24")


#: What ``--help`` says ``xtract-mixin`` does.
DESCRIPTION = """\
Separate songs into harmonic, percussive and vocal parts with MiXiN (Bark-scale NSGT +
convolutional denoising autoencoders + soft masks). Writes OUTDIR/NAME_harmonic.wav,
NAME_percussive.wav and NAME_vocal.wav for each input (see --filename), at the input's sample
rate, length and channels."""


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``xtract-mixin``."""
    p = script_parser(prog, "xtract_mixin.py", "xtract-mixin", DESCRIPTION)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="audio file(s) to separate (WAV, FLAC, OGG, MP3, ...; AAC/M4A, WMA and "
                        "video files through ffmpeg; any rate, any channels), or folders of them "
                        "(see --recursive, --pattern)")
    p.add_argument("--instrumental", action="store_true",
                   help="leave the vocal model out (for instrumental songs; no vocal file is written)")
    p.add_argument("--single-model", action="store_true",
                   help="output each network's magnitude estimate with the mixture's phase "
                        "instead of soft masks (as the original's --single-model)")
    p.add_argument("--outdir", default=".", metavar="DIR",
                   help="output directory (default: the current directory; created if missing)")
    p.add_argument("--filename", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                   help="output file names inside OUTDIR, with the fields "
                        + ", ".join(f"{{{k}}} ({v})" for k, v in FIELDS.items())
                        + "; may contain subfolders, e.g. '{parent}/{stem}.wav' for song folders "
                          "such as MUSDB's 'Artist - Song/mixture.wav'; the extension picks the "
                          "format: .wav, .flac (lossless), .aiff, .w64, .rf64 or .caf "
                          f"(default: {DEFAULT_TEMPLATE})")
    p.add_argument("--first-prefix", action="store_true",
                   help="{name} is the input's file name up to its first underscore")
    models = p.add_mutually_exclusive_group()
    models.add_argument("-n", "--model", default=None, metavar="NAME",
                        help="installed model set to separate with (default: mixin, the published "
                             "architecture trained by this project; see --list-models)")
    models.add_argument("--pretrained-model-dir", default=None, metavar="DIR",
                        help="directory holding model_harmonic, model_percussive and model_vocal as "
                             ".onnx and/or .h5 files (default: the shipped models)")
    p.add_argument("--list-models", action="store_true",
                   help="list the installed model sets with their scores, and exit")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="what runs the networks: onnx (ONNX Runtime on the .onnx files), tf "
                        "(TensorFlow on the .h5 files; pip install \"mixin[train]\") or auto "
                        "(default: onnx when the .onnx files and onnxruntime are there, else tf)")
    ov = p.add_mutually_exclusive_group()
    ov.add_argument("--no-overlap", action="store_true",
                    help="hard chunk boundaries, exactly as the original MiXiN")
    ov.add_argument("--overlap", type=float, default=params.DEFAULT_OVERLAP, metavar="F",
                    help="fraction of a chunk shared by consecutive chunks, 0 to 0.5 "
                         f"(default: {params.DEFAULT_OVERLAP})")
    p.add_argument("--hpss-anchor", type=float, default=None, metavar="A",
                   help="how much of the harmonic/percussive split follows median-filtering HPSS, "
                        "0 (the networks', as published) to 1 (HPSS's; the vocal stays the "
                        "network's); default: the model set's (mixin: 0, mixin-hpss and mixin-onset: 0.25)")
    p.add_argument("--format", choices=SAMPLE_FORMATS, default=None,
                   help="output sample format (default: float32; pcm24 for FLAC, which has no "
                        "float samples); PCM clips rather than wraps")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist (refused otherwise)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="chunks per network call (default: 8; with --stream, the channel count: "
                        "one chunk per call, the lowest latency)")
    b = p.add_argument_group("batch", "many songs: resumable, on several cores or machines "
                                      "(see the README's 'Many songs')")
    b.add_argument("--input-list", metavar="FILE",
                   help="also separate the files listed in FILE, one path a line (relative to "
                        "FILE's folder; blank lines and lines starting with # skipped)")
    b.add_argument("--recursive", action="store_true", help="a folder INPUT includes its subfolders")
    b.add_argument("--pattern", metavar="GLOB",
                   help="a folder INPUT gives its files matching GLOB, e.g. '*.flac' (default: "
                        "files with an audio extension)")
    b.add_argument("--skip-existing", action="store_true",
                   help="skip an input whose outputs all exist (an output exists only once "
                        "complete: it is renamed into place when done); one with only some of "
                        "them is separated again and they are replaced")
    b.add_argument("--manifest", metavar="CSV",
                   help="record one row per input in CSV (input, outputs, status done/skipped/"
                        "failed, seconds, error), appended as each input finishes; rerunning "
                        "the same command with --skip-existing does only what is left")
    b.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="separate in N processes on this machine, each with 1/N of the cores "
                        "and its own copy of the models (default: 1)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="send the inputs to the Dask distributed cluster at ADDRESS (e.g. "
                        "tcp://host:8786); paths must be the same on every machine (needs the "
                        "[dask] extra)")
    st = p.add_argument_group("stream", "live audio from standard input (see the README's 'Live')")
    st.add_argument("--stream", action="store_true",
                    help="separate audio read from standard input, writing the outputs (WAV "
                         "files, or named pipes that exist) as each chunk is done")
    st.add_argument("--stream-format", default="wav", metavar="SPEC",
                    help="wav (the default: a WAV stream, its header says the rest) or raw "
                         "PCM as FORMAT:RATE:CHANNELS, FORMAT one of u8, s16le, s24le, s32le, "
                         "f32le, f64le (e.g. s16le:44100:2)")
    st.add_argument("--stream-name", default="stream", metavar="NAME",
                    help="the {name} (and {parent}) of the outputs of --stream (default: stream)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print debugging information (TensorFlow's logs included)")
    p.add_argument("--version", action="version", version=f"MiXiN {__version__}")
    return p


def check_template(template: str) -> str:
    """Validate a ``--filename`` template (known fields, ``{stem}`` present); return it.
    :class:`MixinError` for unbalanced braces, an unknown field, a bad format spec, no ``{stem}``,
    or an empty name."""
    where = f"--filename {template!r}"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise MixinError(f"{where}: {e}") from None
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise MixinError(f"{where}: unknown field {{{unknown[0]}}}; the fields are "
                         + " ".join(f"{{{k}}}" for k in FIELDS))
    if "stem" not in fields:
        raise MixinError(f"{where}: needs {{stem}}, or the three outputs would have one name")
    try:
        name = template.format(name="x", parent="x", stem="x", ext="x")
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise MixinError(f"{where}: {e}") from None
    if not os.path.basename(name) or name.endswith(("/", os.sep)):
        raise MixinError(f"{where}: names a folder, not a file")
    return template


def template_fields(inp: str, first_prefix: bool = False) -> dict:
    """The values of the template fields (all but ``stem``) for input ``inp``."""
    name, ext = os.path.splitext(os.path.basename(inp))
    if first_prefix:
        name = name.split("_")[0] or name
    parent = os.path.basename(os.path.dirname(os.path.abspath(inp)))
    return {"name": name, "parent": parent or "root", "ext": ext.lstrip(".")}


def output_paths(inputs: Sequence[str], outdir: str | os.PathLike, sources: Sequence[str],
                 template: str = DEFAULT_TEMPLATE, first_prefix: bool = False) -> dict[str, dict[str, str]]:
    """Output file per input and source, ``OUTDIR/TEMPLATE`` expanded.

    Returns dict input -> dict source -> path (an input given twice appears once). Raises
    :class:`MixinError` (one line) when two outputs would have the same name or an output would
    overwrite an input.
    """
    check_template(template)
    plan, seen, done = {}, {}, set()
    in_real = {os.path.realpath(i) for i in inputs}
    for inp in inputs:
        if os.path.realpath(inp) in done:  # the same file given twice: separated once
            continue
        done.add(os.path.realpath(inp))
        fields = template_fields(inp, first_prefix)
        outs = {s: os.path.normpath(os.path.join(outdir, template.format(stem=s, **fields)))
                for s in sources}
        for s, o in outs.items():
            r = os.path.realpath(o)
            if r in in_real:
                raise MixinError(f"output {o} would overwrite an input file")
            if r in seen:
                other, s2 = seen[r]
                if other == inp:
                    raise MixinError(f"--filename gives {o} for both {s2} and {s} of {inp}")
                raise MixinError(f"inputs {other} and {inp} would both write {o} "
                                 f"(use --filename with {{parent}} or {{ext}} to tell them apart)")
            seen[r] = (inp, s)
        plan[inp] = outs
    return plan


def check_folder(d: str, what: str = "folder") -> None:
    """Check, without creating anything, that files can be written in folder ``d`` (created
    later if missing): ``d`` or its nearest existing ancestor is a writable folder."""
    from ..io import check_output_dir

    d = os.path.abspath(d)
    if os.path.exists(d) and not os.path.isdir(d):
        raise MixinError(f"{what} {d} is not a directory")
    probe = d
    while not os.path.exists(probe):
        up = os.path.dirname(probe)
        if up == probe:
            break
        probe = up
    if not os.path.isdir(probe):
        raise MixinError(f"cannot create {what} {d}: {probe} is not a directory")
    try:
        check_output_dir(probe)
    except MixinError:
        verb = "cannot write in" if probe == d else f"cannot create {what} {d}:"
        raise MixinError(f"{verb} {probe}: not writable") from None


def _check_batch_flags(args):
    """The batch and stream flags, alone and together (one line for the first problem)."""
    if args.jobs < 1:
        raise MixinError(f"--jobs must be at least 1, got {args.jobs}")
    if args.scheduler is not None and args.jobs != 1:
        raise MixinError("--jobs and --scheduler exclude each other (start Dask workers instead)")
    if args.stream:
        used = [f for f, v in (("INPUT", args.inputs), ("--input-list", args.input_list),
                               ("--manifest", args.manifest), ("--skip-existing", args.skip_existing),
                               ("--scheduler", args.scheduler), ("--jobs", args.jobs != 1),
                               ("--recursive", args.recursive), ("--pattern", args.pattern)) if v]
        if used:
            raise MixinError(f"--stream reads standard input: {used[0]} cannot go with it")
        if not args.stream_name or "/" in args.stream_name or args.stream_name in (".", ".."):
            raise MixinError(f"--stream-name {args.stream_name!r} must be a file name (no /)")
    elif not args.inputs and args.input_list is None:
        raise MixinError("no input given (INPUT ..., --input-list FILE, or --stream)")
    if args.skip_existing and args.overwrite:
        raise MixinError("--skip-existing and --overwrite exclude each other")


def _check_flags(args) -> str:
    """--overlap, --batch-size and --filename (returned)."""
    from ..chunks import hop_size

    hop_size(0.0 if args.no_overlap else args.overlap)
    if args.hpss_anchor is not None and not 0.0 <= args.hpss_anchor <= 1.0:
        raise MixinError(f"--hpss-anchor must be from 0 to 1, got {args.hpss_anchor:g}")
    if args.hpss_anchor and args.single_model:
        raise MixinError("--hpss-anchor moves the soft masks; --single-model has none")
    if args.batch_size is not None and args.batch_size < 1:
        raise MixinError(f"--batch-size must be at least 1, got {args.batch_size}")
    return check_template(args.filename)


def _check_models(args, sources) -> tuple[str, str]:
    """The networks' folder (--pretrained-model-dir, or the installed set --model names) and
    backend (returned), and --outdir."""
    from .. import backends
    from ..modelsets import resolve

    model_dir = args.pretrained_model_dir or resolve(args.model)
    backend = backends.choose(args.backend, model_dir, sources)
    check_folder(args.outdir, "--outdir")
    return model_dir, backend


def _preflight(args, sources, inputs=None):
    """Every check that needs no TensorFlow. Returns (plan, subtypes, failures, model_dir, skipped,
    backend): plan = dict input -> outputs (source -> path) of the inputs that passed, subtypes =
    dict input -> libsndfile subtype of its outputs, failures = list of (input, message), skipped
    = dict input -> outputs of the inputs whose outputs all exist (with --skip-existing), backend
    = "onnx" or "tf". MixinError for problems of the whole call."""
    from ..io import check_input, output_subtype
    from ..separation.batch import outputs_complete

    inputs = args.inputs if inputs is None else inputs
    template = _check_flags(args)
    tail = os.path.splitext(template)[1]
    if "{" not in tail:  # the same format for every input: check it once
        try:
            output_subtype(template, args.format)
        except MixinError as e:
            raise MixinError(f"--filename {template!r}" + str(e)[len(template):]) from None
    model_dir, backend = _check_models(args, sources)
    full = output_paths(inputs, args.outdir, sources, template, args.first_prefix)

    plan, subtypes, failures, folders_ok, skipped = {}, {}, [], {}, {}
    for inp, outs in full.items():
        if args.skip_existing and outputs_complete(outs):
            skipped[inp] = outs
            continue
        try:
            kinds = {output_subtype(o, args.format) for o in outs.values()}
            if len(kinds) > 1:
                raise MixinError(f"--filename gives {inp} outputs of different formats")
            subtypes[inp] = kinds.pop()
            check_input(inp)
            for o in outs.values():
                if os.path.isdir(o):
                    raise MixinError(f"output {o} is a directory")
            existing = [o for o in outs.values() if os.path.exists(o)]
            if existing and not (args.overwrite or args.skip_existing):
                raise MixinError(f"{existing[0]} exists (use --overwrite to replace it)")
            for d in sorted({os.path.dirname(o) for o in outs.values()}):
                if d not in folders_ok:
                    try:
                        check_folder(d)
                        folders_ok[d] = None
                    except MixinError as e:
                        folders_ok[d] = str(e)
                if folders_ok[d]:
                    raise MixinError(folders_ok[d])
        except MixinError as e:
            failures.append((inp, str(e)))
            continue
        plan[inp] = outs
    return plan, subtypes, failures, model_dir, skipped, backend


def _error(msg, inp=None):
    """Print one ``error: ...`` line (naming the input if the message does not)."""
    msg = " ".join(str(msg).split())
    print(f"error: {msg}" if inp is None or inp in msg else f"error: {inp}: {msg}", file=sys.stderr)


def _finish(failures, n_inputs, say) -> int:
    """The summary line of several inputs with failures; the exit status."""
    if failures and n_inputs > 1:
        names = ", ".join(inp for inp, _ in failures)
        print(f"error: {len(failures)} of {n_inputs} input(s) failed: {names}", file=sys.stderr)
    if failures:
        return 1
    say("Done")
    return 0


def _stream_preflight(args, sources):
    """The checks of ``--stream`` that need no TensorFlow; returns (outputs, subtype, model_dir)."""
    import stat

    from ..io import output_subtype

    template = _check_flags(args)
    name = args.stream_name
    outs = {s: os.path.normpath(os.path.join(args.outdir, template.format(
        stem=s, name=name, parent=name, ext="wav"))) for s in sources}
    if len({os.path.realpath(o) for o in outs.values()}) < len(outs):
        raise MixinError(f"--filename {template!r} gives two sources one name")
    for o in outs.values():
        if os.path.splitext(o)[1].lower() != ".wav":
            raise MixinError(f"--stream writes WAV: the output {o} must end in .wav")
    subtype = output_subtype(next(iter(outs.values())), args.format)
    model_dir, backend = _check_models(args, sources)
    for o in outs.values():
        if os.path.isdir(o):
            raise MixinError(f"output {o} is a directory")
        if os.path.exists(o) and not stat.S_ISFIFO(os.stat(o).st_mode) and not args.overwrite:
            raise MixinError(f"{o} exists (use --overwrite to replace it)")
        check_folder(os.path.dirname(o) or ".")
    return outs, subtype, model_dir, backend


def _main_stream(args, sources, say) -> int:
    """``xtract-mixin --stream``: standard input -> growing WAV files or named pipes."""
    from ..separation import live
    from ..separation.batch import make_folders

    try:
        fmt = live.parse_stream_format(args.stream_format)
        outs, subtype, model_dir, backend = _stream_preflight(args, sources)
        if sys.stdin is None or sys.stdin.isatty():
            raise MixinError("--stream reads audio from standard input, which is a terminal: "
                             "pipe it in, e.g. ffmpeg -i song.mp3 -f wav - | xtract-mixin --stream")
        reader = live.StreamReader(sys.stdin.buffer, fmt)  # a malformed header stops here
    except MixinError as e:
        _error(e)
        return 1
    from ..separation.separate import Separator

    try:
        sep = Separator(model_dir, instrumental=args.instrumental, single_model=args.single_model,
                        overlap=0.0 if args.no_overlap else args.overlap,
                        batch_size=args.batch_size or reader.channels, backend=backend,
                        hpss_anchor=args.hpss_anchor,
                        pipeline=False)  # no read-ahead: a chunk's output leaves as soon as it is done
        for d in sorted({os.path.dirname(o) for o in outs.values()}):
            make_folders(d or ".")
        say(f"stream: {reader.channels} channel(s) at {reader.rate} Hz -> "
            + ", ".join(outs[s] for s in sources), file=sys.stderr)
        res = live.separate_stream(sep, reader, outs, subtype)
    except MixinError as e:
        _error(e)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    say(f"stream: {res['frames']} frames ({res['seconds']:.1f} s) in {res['wall']:.1f} s",
        file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``xtract-mixin`` with ``argv`` (default: the command line); return the exit status."""
    args = get_parser().parse_args(argv)
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    log.setLevel(level)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if args.verbose else "3"
    say = (lambda *a, **k: None) if args.quiet else print
    sources = params.SOURCES[:2] if args.instrumental else params.SOURCES
    from ..separation import batch

    manifest = None
    try:
        if args.list_models:
            from ..modelsets import format_sets

            print(format_sets())
            return 0
        _check_batch_flags(args)
        if args.stream:
            return _main_stream(args, sources, say)
        inputs, folder_failures = batch.collect_inputs(args.inputs, args.input_list,
                                                       args.recursive, args.pattern)
        plan, subtypes, failures, model_dir, skipped, backend = _preflight(args, sources, inputs)
        failures = folder_failures + failures
        if args.manifest:
            manifest = batch.Manifest(args.manifest)
            manifest.check()
            check_folder(os.path.dirname(os.path.abspath(args.manifest)), "--manifest folder")
    except MixinError as e:
        _error(e)
        return 1
    except ModuleNotFoundError as e:
        _error(f"{e.name} is not installed for {sys.executable}: install MiXiN in this Python "
               "(pip install .) or run the venv's (.venv/bin/xtract-mixin)")
        return 1
    n_inputs = len(plan) + len(failures) + len(skipped)
    for inp, msg in failures:
        _error(msg, inp)
    if skipped:
        say(f"skipped {len(skipped)} input(s) whose outputs all exist")
    try:
        if manifest is not None:
            kept = manifest.open(redo=set(plan) | {inp for inp, _ in failures})
            for inp, msg in failures:
                manifest.write({"input": inp, "outputs": "", "status": "failed", "seconds": 0.0,
                                "error": " ".join(msg.split())})
            for inp, outs in skipped.items():
                if kept.get(inp, {}).get("status") not in ("done", "skipped"):
                    manifest.write({"input": inp, "outputs": outs, "status": "skipped",
                                    "seconds": 0.0, "error": ""})
        if not plan:
            return _finish(failures, n_inputs, say)
        return _run_batch(args, sources, plan, subtypes, failures, model_dir, manifest, say,
                          n_inputs, backend)
    except MixinError as e:
        _error(e)
        return 1
    finally:
        if manifest is not None:
            manifest.close()


def _run_batch(args, sources, plan, subtypes, failures, model_dir, manifest, say, n_inputs, backend):
    """Separate the planned inputs here, in --jobs processes or on a Dask cluster."""
    from ..backends import model_files
    from ..separation import batch

    tasks = [batch.make_task(inp, outs, subtypes[inp]) for inp, outs in plan.items()]

    def on_result(row):
        if manifest is not None:
            manifest.write(row)
        if row["status"] == "done":
            say(f"{row['input']} -> " + ", ".join(row["outputs"][s] for s in sources))
        else:
            failures.append((row["input"], row["error"]))
            _error(row["error"], row["input"])

    sep_kwargs = dict(instrumental=args.instrumental, single_model=args.single_model,
                      overlap=0.0 if args.no_overlap else args.overlap,
                      batch_size=args.batch_size or 8, backend=backend, hpss_anchor=args.hpss_anchor)
    paths = model_files(model_dir, sources, backend)
    try:
        if args.scheduler is not None:
            # the shipped set: each worker finds its own installed copy; the backend as asked
            sep_kwargs["model_dir"] = (os.path.abspath(args.pretrained_model_dir)
                                       if args.pretrained_model_dir else
                                       None if args.model is None else os.path.abspath(model_dir))
            sep_kwargs["backend"] = args.backend
            say(f"Sending {len(tasks)} input(s) to the Dask scheduler at {args.scheduler}")
            batch.run_dask(args.scheduler, sep_kwargs, tasks, on_result)
        elif args.jobs > 1 and len(tasks) > 1:
            sep_kwargs["model_dir"] = model_dir
            jobs = min(args.jobs, len(tasks))
            say(f"Loading models in {jobs} processes from:\n"
                + "\n".join(f"\t{paths[s]}" for s in sources))
            batch.run_jobs(jobs, sep_kwargs, tasks, on_result)
        else:
            from ..separation.separate import Separator

            say("Loading models from:\n" + "\n".join(f"\t{paths[s]}" for s in sources))
            sep = Separator(model_dir, **sep_kwargs)
            batch.run_serial(sep, tasks, on_result, progress=not args.quiet and sys.stderr.isatty())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return _finish(failures, n_inputs, say)


if __name__ == "__main__":
    sys.exit(main())
