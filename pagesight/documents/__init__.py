"""Documents: the Page record and loaders for PDFs, URLs, images and folders."""
