"""The member panel widget on its own: lines as written, long lines wrapped, height that only grows, colours that follow its class."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from terminal.app.panel import Panel

pytestmark = pytest.mark.anyio


class PanelApp(App[None]):
    CSS = "Panel { width: 20; } Panel.refused { background: red; }"

    def compose(self) -> ComposeResult:
        yield Panel(Text("start"), id="p")


def shown(app: PanelApp) -> list[str]:
    panel = app.query_one(Panel)
    return [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]


async def test_lines_styles_and_a_height_that_only_grows() -> None:
    app = PanelApp()
    async with app.run_test(size=(40, 12)) as pilot:
        panel = app.query_one(Panel)
        text = Text()
        text.append("Fatima", style="bold")
        text.append("  ")
        text.append(" SILVER ", style="bold reverse")
        text.append("\n\nCoffee card\n")
        text.append("●●○", style="green")
        text.append(" 2/3\n")
        panel.show(text)
        await pilot.pause()
        assert shown(app) == ["Fatima   SILVER", "", "Coffee card", "●●○ 2/3"]
        first = panel.render_line(0)
        assert [seg.text for seg in first if seg.text.strip()] == ["Fatima", " SILVER "]
        assert first.cell_length == 20  # padded to the panel's width
        styles = {seg.text: seg.style for seg in first}
        assert styles["Fatima"] is not None and styles["Fatima"].bold
        assert styles[" SILVER "] is not None and styles[" SILVER "].reverse

        panel.show(Text("No card\n"))
        await pilot.pause()
        assert shown(app) == ["No card", "", "", ""]  # shorter text: the panel keeps its height, blank below


async def test_a_line_wider_than_the_panel_wraps_and_nested_styles_combine() -> None:
    app = PanelApp()
    async with app.run_test(size=(40, 12)) as pilot:
        panel = app.query_one(Panel)
        panel.show(Text("Abdulrahman Al-Mutairi Bin Fahad\nok\n"))
        await pilot.pause()
        assert shown(app) == ["Abdulrahman", "Al-Mutairi Bin Fahad", "ok"]  # 20 cells: fits
        nested = Text("red and bold\n")
        nested.stylize("red", 0, 12)
        nested.stylize("bold", 8, 12)
        panel.show(nested)
        await pilot.pause()
        bold = [seg for seg in panel.render_line(0) if seg.text == "bold"]
        assert bold and bold[0].style is not None and bold[0].style.bold and bold[0].style.color is not None


async def test_a_class_change_repaints_with_the_new_background() -> None:
    app = PanelApp()
    async with app.run_test(size=(40, 12)) as pilot:
        panel = app.query_one(Panel)
        panel.show(Text("CARD REFUSED\n"))
        await pilot.pause()
        before = panel.render_line(0)
        panel.add_class("refused")
        await pilot.pause()
        after = panel.render_line(0)
        assert before.text == after.text
        assert {seg.style.bgcolor for seg in after if seg.style} != {seg.style.bgcolor for seg in before if seg.style}
