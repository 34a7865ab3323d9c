"""A plugin whose import fails, as a vendor package with a missing dependency."""

import docwiz_vendor_sdk_that_is_not_installed  # noqa: F401
