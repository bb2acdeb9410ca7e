// SPDX-License-Identifier: GPL-2.0
/*
 * tlp_notlp: an ordinary module WITHOUT MODULE_INFO(livepatch, "Y"), shipped
 * in a livepatch directory by the tlp-notlp RPM. The tool's preflight must
 * refuse it (modinfo shows no livepatch=Y).
 */
#include <linux/module.h>

static int __init tlp_notlp_init(void)
{
	return 0;
}

static void __exit tlp_notlp_exit(void)
{
}

module_init(tlp_notlp_init);
module_exit(tlp_notlp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("transactional-livepatch test fixture: not a livepatch");
