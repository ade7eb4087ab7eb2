// Compiled with the generated stubs (check.sh): a request built with the generated Java
// classes and the blocking stub a caller would use with a channel.
import com.example.authz.v1.CheckRequest;
import com.example.authz.v1.CheckResponse;
import com.example.authz.v1.Decision;
import com.example.authz.v1.ObjectReference;
import com.example.authz.v1.PermissionsServiceGrpc;
import com.example.authz.v1.SubjectReference;
import io.grpc.Channel;

public final class Example {
  private Example() {}

  /** Fail closed: only DECISION_ALLOWED allows. */
  public static boolean mayView(Channel channel, String user, String document) {
    CheckRequest request = CheckRequest.newBuilder()
        .setTenant("demo")
        .setResource(ObjectReference.newBuilder().setObjectType("document").setObjectId(document))
        .setPermission("view")
        .setSubject(SubjectReference.newBuilder()
            .setObject(ObjectReference.newBuilder().setObjectType("user").setObjectId(user)))
        .build();
    CheckResponse response = PermissionsServiceGrpc.newBlockingStub(channel).check(request);
    return response.getDecision() == Decision.DECISION_ALLOWED;
  }

  public static void main(String[] args) {
    System.out.println(CheckRequest.newBuilder().setPermission("view").build());
  }
}
