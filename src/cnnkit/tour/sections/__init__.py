"""One module per report section; see `cnnkit.tour`."""
