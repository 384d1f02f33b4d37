#!/bin/busybox sh
# Example for ktstr.image's own tests (tests/unit/test_image_templates.py); not used in guests.
greeting='it'\''s $HOME `x`'
for module in '9p' '9pnet virtio'; do
  echo "loading $module"
done

poweroff -f

echo "$greeting"
