"""What every ``nfc`` command module shares: one-line errors, the progress bar."""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import click

from ..bitstream import BitstreamError
from ..errors import NFCodecError

__all__ = ["_fail_cleanly", "_progress_bar", "_show"]


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and I/O errors) into ``nfc: error: ...`` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (NFCodecError, BitstreamError) as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError:              # e.g. `nfc info x.nfc | head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as e:
            raise click.ClickException(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; no output written") from None
        except MemoryError:
            raise click.ClickException("out of memory (no output written); for a large file see the decoder "
                                       "limits in docs/cli.md") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - last line of defence: one line, never a traceback
            if os.environ.get("NFC_DEBUG"):
                raise
            raise click.ClickException(f"internal error ({type(e).__name__}: {e}); no output written; "
                                       "please report it (NFC_DEBUG=1 shows the traceback)") from None

    return wrapper


def _show(msg: str) -> None:
    click.echo(f"nfc: error: {msg}", err=True)


click.ClickException.show = lambda self, file=None: _show(self.format_message())  # type: ignore[method-assign]


def _progress_bar(quiet: bool, desc: str = "fitting", label: str = "PSNR"):
    """A tqdm bar (stderr, shown on terminals only) created at the first fitting step."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bars: list[Any] = []

    def update(step: int, total: int, psnr: float) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=step - 1, desc=desc, unit="step", file=sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=0.25, disable=None))
        if total != bars[0].total:          # rate control: each new fit extends the bar
            bars[0].total = total
        bars[0].update(step - bars[0].n)
        bars[0].set_postfix_str(f"{label} {psnr:.2f} dB", refresh=False)

    return update, lambda: bars and bars[0].close()
