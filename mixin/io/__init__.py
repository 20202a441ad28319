"""Audio and file input/output: every libsndfile call and every output file of MiXiN goes through
here: :mod:`.files` (the one atomic mechanism, for every output file and folder), :mod:`.read` (checks,
probing, streaming, the ffmpeg fallback), :mod:`.resample` (soxr) and :mod:`.write` (audio outputs).

Channel policy: files are read as float32 ``[shape=(n_frames, n_channels)]``; every channel is kept
and separated on its own; outputs have the input's channels, rate and length. API arrays are
``[shape=(n,)]`` or ``[shape=(n_samples, n_channels)]`` (more columns than rows: refused, :func:`as_2d`).

Errors: what the user can fix (a missing, empty, non-audio, truncated or corrupt file, NaN/Inf, an
unwritable folder, a format that cannot hold the sample format) raises :class:`mixin.errors.MixinError`,
one line naming the path; API misuse (block shape, use after close) ``ValueError``/``TypeError``.
"""

from .files import (PART_SUFFIX, Part, atomic_folder, atomic_open, atomic_path, copy_file, lock_part,
                    part_files, remove_stale_parts, write_bytes, write_json, write_text)
from .read import (FFMPEG_FORMATS, AudioInfo, UnreadableAudio, as_2d, check_finite, check_input, decoded,
                   ffmpeg_executable, iter_blocks, probe, read_audio, read_range, sound_file, sound_info)
from .resample import Resampler, resample, resampled_length
from .write import (OUTPUT_CONTAINERS, OUTPUT_DEFAULT_SUBTYPE, SUBTYPES, AtomicWriter, check_output_dir,
                    clip_unit, output_subtype, raw_pcm, write_audio)
