"""End of day: the sync's end of day with a progress bar, then the Z report, printed."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static

from .checkout import plain_reason
from .messages import EndOfDayDone, EndOfDayProgress, PrintStatus
from .ports import ZReport
from .services import Services


class EndOfDayScreen(Screen[None]):
    DEFAULT_CSS = """
    EndOfDayScreen { layout: vertical; }
    #eod-title { height: 1; background: $boost; padding: 0 1; text-style: bold; }
    #eod-bar { margin: 1 2; width: 1fr; }
    #eod-step { margin: 0 2; height: auto; }
    #eod-print { margin: 0 2; height: 1; }
    #eod-report { margin: 1 2; height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back"), Binding("p", "print", "Print again")]

    def __init__(self, services: Services):
        super().__init__()
        self.services = services
        self.report: ZReport | None = None

    def compose(self) -> ComposeResult:
        yield Static("End of day", id="eod-title")
        yield ProgressBar(total=1.0, show_eta=False, id="eod-bar")
        yield Static("starting…", id="eod-step")
        yield Static("", id="eod-print")
        with VerticalScroll(id="eod-report"):
            yield Static("", id="eod-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.run_end_of_day()

    @work(thread=True, exclusive=True, group="eod", exit_on_error=False)
    def run_end_of_day(self) -> None:
        def progress(fraction: float, label: str) -> None:
            self.post_message(EndOfDayProgress(fraction, label))

        try:
            report = self.services.sync.end_of_day(progress)
        except Exception as exc:
            self.post_message(EndOfDayDone(None, plain_reason(exc)))
            return
        self.post_message(EndOfDayDone(report))
        self.reprint(report.day)

    @on(EndOfDayProgress)
    def _progress(self, msg: EndOfDayProgress) -> None:
        self.query_one("#eod-bar", ProgressBar).update(progress=msg.fraction)
        self.query_one("#eod-step", Static).update(Text(msg.label))

    @on(EndOfDayDone)
    def _done(self, msg: EndOfDayDone) -> None:
        if msg.report is None:
            self.query_one("#eod-step", Static).update(
                # a server that does not answer is not a failure (the day closes offline): this is something else
                Text(f"End of day failed: {msg.error}. Run it again (F12, e) once that is put right; a step it had done"
                     " is not done twice.", style="bold red")
            )
            return
        self.report = msg.report
        self.query_one("#eod-bar", ProgressBar).update(progress=1.0)
        from receipts.templates import lang_for

        from .rtl import for_terminal

        # the paper's Z: in Arabic or Persian, right to left with its letters joined, as printed
        shown = for_terminal(msg.report.text, lang_for(self.services.cfg).rtl)
        self.query_one("#eod-text", Static).update(Text(shown))
        self.app.refresh_status()  # type: ignore[attr-defined]

    def action_print(self) -> None:
        if self.report is not None:
            self.reprint(self.report.day, copy=True)

    @work(thread=True, group="print", exit_on_error=False)
    def reprint(self, day: str, copy: bool = False) -> None:
        try:
            status = self.services.printer.print_job("z_report", day, copy=copy)
        except Exception as exc:
            self.post_message(PrintStatus(False, f"Z report not printed: {plain_reason(exc)}"))
            return
        self.post_message(PrintStatus(True, f"Z report {status}"))

    @on(PrintStatus)
    def _printed(self, msg: PrintStatus) -> None:
        self.query_one("#eod-print", Static).update(Text(msg.text, style="green" if msg.ok else "bold red"))

    def action_back(self) -> None:
        self.app.pop_screen()
