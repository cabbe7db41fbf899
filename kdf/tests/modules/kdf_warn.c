// SPDX-License-Identifier: GPL-2.0
/* A module whose init warns: kdf run --module must end with 122. */
#include <linux/module.h>

static int __init kdf_warn_init(void)
{
	WARN_ON(1);
	return 0;
}
static void __exit kdf_warn_exit(void) { }
module_init(kdf_warn_init);
module_exit(kdf_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdf test module (kdf_warn)");
