"""The item field: a line a barcode scanner types ends at its Enter, however fast the next one follows."""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class ScanInput(Input):
    """Enter hands the line over and empties the field there and then.

    A keyboard-wedge scanner can send two codes in one burst. Textual runs the
    Enter binding only after the key has gone round the screen and the app, by
    when the field has taken the next code's first keys: "LAT", Enter, "CRO",
    Enter came out as "LATC" and "RO". Here Enter is a key of the field itself,
    in the order it came.
    """

    # Textual calls the handler of every class up the line; prevent_default() keeps Input's own from running too

    async def _on_key(self, event: events.Key) -> None:
        # a scanner may end its codes with LF (the terminal's ctrl+j) instead of CR
        if event.key in ("enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self._hand_over()

    def _on_paste(self, event: events.Paste) -> None:
        # a pasted or bracketed burst of several lines is several entries, not its first line only
        first, *more = event.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        event.stop()
        event.prevent_default()
        self._insert(first)
        for line in more:
            self._hand_over()
            self._insert(line)

    def _insert(self, text: str) -> None:
        if self.selection.is_empty:
            self.insert_text_at_cursor(text)
        else:
            self.replace(text, *self.selection)

    def _hand_over(self) -> None:
        value = self.value
        self.value = ""
        self.post_message(self.Submitted(self, value, self.validate(value) if "submitted" in self.validate_on else None))

    async def action_submit(self) -> None:
        self._hand_over()
