"""The map: coloured by angular extent or any column; click a source for its nearest neighbours."""

from explorer import ui

ui.require_app()
ui.map_page(ui.current_space())
