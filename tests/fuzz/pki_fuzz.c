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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    am_pki_csr csr;
    if (am_pki_csr_parse(data, size, &csr) == 0)
        am_pki_csr_free(&csr);
    am_pki_key *k = NULL;
    if (am_pki_key_from_pem((const char *)data, size, &k) == 0)
        am_pki_key_free(k);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t serial, not_after;
    char cn[128], fp[65];
    am_pki_cert_info(text, &serial, &not_after, cn);
    am_pki_fingerprint_sha256(text, fp);
    uint8_t *der = NULL;
    size_t len = 0;
    if (am_pki_pem_to_der(text, &der, &len) == 0)
        free(der);
    am_pki_verify_chain(text, text);
    free(text);
    return 0;
}
