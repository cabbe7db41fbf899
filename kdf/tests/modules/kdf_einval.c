// SPDX-License-Identifier: GPL-2.0
/* A module whose init fails: kdf run --module must end with 123. */
#include <linux/module.h>

static int __init kdf_einval_init(void)
{
	pr_err("kdf_einval: refusing to load\n");
	return -EINVAL;
}
module_init(kdf_einval_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdf test module (kdf_einval)");
