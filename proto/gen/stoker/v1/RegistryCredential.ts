// Original file: proto/stoker/v1/agent.proto


export interface RegistryCredential {
  'registry'?: (string);
  'username'?: (string);
  'password'?: (string);
  'auth'?: (string);
  'identityToken'?: (string);
  'registryToken'?: (string);
}

export interface RegistryCredential__Output {
  'registry': (string);
  'username': (string);
  'password': (string);
  'auth': (string);
  'identityToken': (string);
  'registryToken': (string);
}
