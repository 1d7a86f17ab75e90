"""The app's pages, declared once: `app.py` builds its navigation from this table, and a lesson file
names its pages by `name`, so a lesson cannot point at a page the app does not have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageInfo:
    """One page: `name` is its file's stem (what lessons and links call it)."""

    name: str
    title: str
    icon: str
    default: bool = False

    @property
    def path(self) -> str:
        """The page file, relative to the repository root (what `st.Page` and `st.page_link` take)."""
        return f"app_pages/{self.name}.py"

    @property
    def url_path(self) -> str:
        """The page's address under the app's root: Streamlit serves the default page at `/`."""
        return "" if self.default else self.name


PAGES: tuple[PageInfo, ...] = (
    PageInfo("home", "Scenario", ":material/home:", default=True),
    PageInfo("attack_lab", "Attack lab", ":material/bug_report:"),
    PageInfo("salience", "Salience maps", ":material/local_fire_department:"),
    PageInfo("compare", "Compare rankings", ":material/leaderboard:"),
    PageInfo("purify", "Purify", ":material/cleaning_services:"),
    PageInfo("explain", "Explain", ":material/visibility:"),
    PageInfo("lesson", "Lesson", ":material/school:"),
)
BY_NAME: dict[str, PageInfo] = {page.name: page for page in PAGES}
