/*
 * appliance/auth internals shared by auth.c and users.c (not a public header).
 */
#ifndef AM_APPLIANCE_AUTH_INTERNAL_H
#define AM_APPLIANCE_AUTH_INTERNAL_H

/* SHA-256 hex of a bearer secret: the key of its Session record. */
void am_auth_token_key(const char *token, char hex[65]);
/* 24 random characters from an unambiguous alphabet. */
int am_auth_random_password(char pw[25]);

#endif
