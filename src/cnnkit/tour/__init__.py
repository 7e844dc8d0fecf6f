"""`cnnkit tour`: run every capability on built-in data and write an HTML report with pictures.

Each module in `cnnkit.tour.sections` is one section of the report. It defines
`TITLE: str`, `ORDER: int` (where it stands in the report) and `build(section: Section, ctx: TourContext)`,
which runs the capability and adds text, tables and pictures to `section`. Adding a section is adding a
module: nothing else to edit.
"""

from cnnkit.tour.report import Report, Section, TourContext
from cnnkit.tour.runner import discover_sections, run_tour

__all__ = ["Report", "Section", "TourContext", "discover_sections", "run_tour"]
