"""Look-up: a position, a name or a FITS file -> FIRST cutout -> model input -> map -> neighbours."""

from explorer import ui

ui.require_app()
ui.lookup_page(ui.current_space())
