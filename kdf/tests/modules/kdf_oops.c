// SPDX-License-Identifier: GPL-2.0
/* A module whose init dereferences NULL: the guest survives, the run ends 122. */
#include <linux/module.h>

static int * volatile kdf_oops_ptr;

static int __init kdf_oops_init(void)
{
	*kdf_oops_ptr = 1;
	return 0;
}
module_init(kdf_oops_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdf test module (kdf_oops)");
