/*
 * tests/fuzz/pki_fuzz.c — the pki module's parsers on arbitrary bytes: CSR DER (signature check,
 * key type), private key PEM, certificate PEM (info, DER, fingerprint) and chain verification.
 * Every call answers 0 or a clear error; none may crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki/pki.h"

const char *const fuzz_seeds[] = {"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
                                  NULL};
const size_t fuzz_seed_lens[] = {59, 0};

/* driver.c counts inputs that reached the parsers (absent under libFuzzer's own main). */
void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int accepted = 0;
    am_pki_csr csr;
    if (am_pki_csr_parse(data, size, &csr) == 0) {
        accepted = 1;
        am_pki_csr_free(&csr);
    }
    am_pki_key *k = NULL;
    if (am_pki_key_from_pem((const char *)data, size, &k) == 0) {
        accepted = 1;
        am_pki_key_free(k);
    }
    char *text = malloc(size + 1);
    if (!text)
        abort(); /* never a silent pass */
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t serial, not_after;
    char cn[128], fp[65];
    am_pki_cert_info(text, &serial, &not_after, cn);
    am_pki_fingerprint_sha256(text, fp);
    uint8_t *der = NULL;
    size_t len = 0;
    if (am_pki_pem_to_der(text, &der, &len) == 0) {
        accepted = 1;
        free(der);
    }
    am_pki_verify_chain(text, text);
    free(text);
    if (fuzz_reached)
        fuzz_reached(accepted);
    return 0;
}
