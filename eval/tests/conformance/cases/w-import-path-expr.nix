import (../data + "/dir")
