/* SPDX-License-Identifier: Apache-2.0 */
/* random.c -- random bytes from getrandom(2). See random.h. */
#include "common/random.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "common/hex.h"

int kc_random_bytes(void *buf, size_t len, struct kc_error *err)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            kc_error_set(err, KC_EIO, "could not read random bytes: %s", strerror(e));
            kc_error_detail(err, "getrandom(2) failed; ids, keys and passwords cannot be made "
                                 "safely without the kernel's random number generator.");
            return KC_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kc_random_hex(char *out, size_t nbytes, struct kc_error *err)
{
    uint8_t raw[64];
    size_t done = 0;

    out[0] = '\0';
    while (done < nbytes) {
        size_t chunk = nbytes - done < sizeof(raw) ? nbytes - done : sizeof(raw);
        int rc = kc_random_bytes(raw, chunk, err);
        if (rc != 0)
            return rc;
        kc_hex_encode(raw, chunk, out + 2 * done);
        done += chunk;
    }
    return 0;
}
