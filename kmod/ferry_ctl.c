// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/ferry-ctl: argument checking and dispatch of the ioctls defined in
 * include/ferry/tracker_ioctl.h.  Every refusal has its own errno and a
 * rate-limited line in the kernel log saying why.
 */
#define pr_fmt(fmt) "ferry: " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "ferry.h"

static bool ferry_zeroed(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static int ferry_bad_arg(const char *what, unsigned int cmd)
{
	pr_warn_ratelimited("ioctl %#x: %s must be zero\n", cmd, what);
	return -EINVAL;
}

/* MKDEV() would silently alias a number that does not fit in a dev_t. */
static int ferry_check_devt(u32 major, u32 minor, unsigned int cmd)
{
	if (major < (1U << (32 - MINORBITS)) && minor <= MINORMASK)
		return 0;
	pr_warn_ratelimited("ioctl %#x: %u:%u is not a valid device number\n",
			    cmd, major, minor);
	return -EINVAL;
}

static long ferry_ioc_version(void __user *uarg)
{
	struct ferry_version v = { .abi = FERRY_ABI_VERSION,
				   .load_id = ferry_load_id };

	strscpy(v.version, FERRY_VERSION, sizeof(v.version));
	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long ferry_ioc_attach(unsigned int cmd, void __user *uarg)
{
	struct ferry_attach a;
	int ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags)
		return ferry_bad_arg("attach flags", cmd);
	if (!ferry_zeroed(a.reserved, sizeof(a.reserved)))
		return ferry_bad_arg("attach reserved fields", cmd);
	if (ferry_check_devt(a.major, a.minor, cmd))
		return -EINVAL;
	ret = ferry_tracker_attach(MKDEV(a.major, a.minor), a.granularity,
				   &a.generation);
	if (ret)
		return ret;
	/* Tracking has started either way; the caller learns its generation
	 * from stats if this copy fails. */
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

static long ferry_ioc_detach(unsigned int cmd, void __user *uarg)
{
	struct ferry_detach d;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if (d.flags || d.reserved0 ||
	    !ferry_zeroed(d.reserved, sizeof(d.reserved)))
		return ferry_bad_arg("detach flags and reserved fields", cmd);
	if (ferry_check_devt(d.major, d.minor, cmd))
		return -EINVAL;
	return ferry_tracker_detach(MKDEV(d.major, d.minor));
}

static long ferry_ioc_drain(unsigned int cmd, void __user *uarg)
{
	struct ferry_drain d;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if (d.flags & ~FERRY_DRAIN_CONTINUE)
		return ferry_bad_arg("unknown drain flags", cmd);
	if (!ferry_zeroed(d.reserved, sizeof(d.reserved)))
		return ferry_bad_arg("drain reserved fields", cmd);
	if (ferry_check_devt(d.major, d.minor, cmd))
		return -EINVAL;
	if (!d.max_extents) {
		pr_warn_ratelimited("drain %u:%u: buffer too small: room for %u extents, need at least 1\n",
				    d.major, d.minor, d.max_extents);
		return -ENOBUFS;
	}
	/* Refuse an unwritable buffer before the set is taken. */
	if (!d.extents ||
	    !access_ok(u64_to_user_ptr(d.extents),
		       (u64)d.max_extents * sizeof(struct ferry_extent))) {
		pr_warn_ratelimited("drain %u:%u: extent buffer is not a valid user address\n",
				    d.major, d.minor);
		return -EFAULT;
	}
	/* Copies the answer out itself, before it commits the page. */
	return ferry_tracker_drain(&d, uarg);
}

static long ferry_ioc_stats(unsigned int cmd, void __user *uarg)
{
	struct ferry_stats s;
	int ret;

	if (copy_from_user(&s, uarg, sizeof(s)))
		return -EFAULT;
	if (!ferry_zeroed(s.reserved, sizeof(s.reserved)))
		return ferry_bad_arg("stats reserved fields", cmd);
	if (ferry_check_devt(s.major, s.minor, cmd))
		return -EINVAL;
	ret = ferry_tracker_stats(&s);
	if (ret)
		return ret;
	return copy_to_user(uarg, &s, sizeof(s)) ? -EFAULT : 0;
}

/* More trackers than this on one host is not a use we know of. */
#define FERRY_LIST_MAX	4096

static long ferry_ioc_list(unsigned int cmd, void __user *uarg)
{
	struct ferry_list l;
	struct ferry_dev *devs;
	u32 max;
	int ret;

	if (copy_from_user(&l, uarg, sizeof(l)))
		return -EFAULT;
	if (!ferry_zeroed(l.reserved, sizeof(l.reserved)))
		return ferry_bad_arg("list reserved fields", cmd);
	max = min_t(u32, l.max, FERRY_LIST_MAX);
	devs = kcalloc(max ?: 1, sizeof(*devs), GFP_KERNEL);
	if (!devs)
		return -ENOMEM;
	ret = ferry_tracker_list(devs, max, &l.nr);
	if (!ret && max &&
	    copy_to_user(u64_to_user_ptr(l.devs), devs,
			 min(max, l.nr) * sizeof(*devs)))
		ret = -EFAULT;
	kfree(devs);
	if (ret)
		return ret;
	return copy_to_user(uarg, &l, sizeof(l)) ? -EFAULT : 0;
}

static long ferry_ctl_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (!capable(CAP_SYS_ADMIN)) {
		pr_warn_ratelimited("ioctl %#x by pid %d refused: needs CAP_SYS_ADMIN\n",
				    cmd, task_pid_nr(current));
		return -EPERM;
	}
	switch (cmd) {
	case FERRY_IOC_VERSION:
		return ferry_ioc_version(uarg);
	case FERRY_IOC_ATTACH:
		return ferry_ioc_attach(cmd, uarg);
	case FERRY_IOC_DETACH:
		return ferry_ioc_detach(cmd, uarg);
	case FERRY_IOC_DRAIN:
		return ferry_ioc_drain(cmd, uarg);
	case FERRY_IOC_STATS:
		return ferry_ioc_stats(cmd, uarg);
	case FERRY_IOC_LIST:
		return ferry_ioc_list(cmd, uarg);
	default:
		pr_warn_ratelimited("unknown ioctl %#x\n", cmd);
		return -ENOTTY;
	}
}

static const struct file_operations ferry_ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ferry_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice ferry_ctl_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = FERRY_CTL_NAME,
	.fops = &ferry_ctl_fops,
	.mode = 0600,
};

int ferry_ctl_init(void)
{
	return misc_register(&ferry_ctl_dev);
}

void ferry_ctl_exit(void)
{
	misc_deregister(&ferry_ctl_dev);
}
