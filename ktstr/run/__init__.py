"""One scheduler test, end to end: kernel -> image -> VM -> guest -> verdict."""
